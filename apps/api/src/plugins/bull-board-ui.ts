/**
 * Bull Board itself, loaded by `bull-board.ts` on the first operator's request: the board's queues
 * (BullMQ's reads with the schedulers bounded and each occurrence named from Postgres), its UI and
 * routes on a Fastify instance of their own, which the api's /admin/queues routes answer through.
 * Its modules (the board, its static files and views) are not loaded by an api no operator opens.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue, type ConnectionOptions } from 'bullmq';
import { closeQueue, parseSchedulerId, type FireJobData, type FireQueue } from '@tickwork/queue';
import { patternOf } from './errors.ts';

/** How long the board trusts a job's name it read (a rename shows within this). */
const LABEL_TTL_MS = 10_000;
/** At most this many names are kept. */
const LABEL_CACHE_SIZE = 10_000;

/**
 * The fire queue as the board sees it: every read as BullMQ does it, schedulers bounded, and each
 * occurrence and scheduler named `<service> / <job>` from Postgres. Redis holds only ids (a
 * BullMQ name would be stored twice per scheduler and go stale on a rename); the names cost one
 * query per page the board reads, for the ids not read in the last LABEL_TTL_MS.
 */
class BoardQueue extends Queue {
  /** How many schedulers its schedulers page lists (the soonest due). */
  schedulerLimit = 100;
  private readonly labels = new Map<string, { label: string; until: number }>();
  /** Reads the names of jobs by id; set by the plugin. */
  namesOf: (ids: string[]) => Promise<Array<{ id: string; name: string; service: string }>> = async () => [];

  private async labelsOf(ids: Array<string | undefined>): Promise<Map<string, string>> {
    const now = Date.now();
    const wanted = [...new Set(ids.filter((id): id is string => id !== undefined))];
    const missing = wanted.filter((id) => (this.labels.get(id)?.until ?? 0) <= now);
    if (missing.length > 0) {
      // The board still shows ids when Postgres does not answer.
      const found = await this.namesOf(missing).catch(() => []);
      if (this.labels.size + found.length > LABEL_CACHE_SIZE) this.labels.clear();
      for (const { id, name, service } of found) {
        this.labels.set(id, { label: `${service} / ${name}`, until: now + LABEL_TTL_MS });
      }
    }
    return new Map(wanted.flatMap((id) => (this.labels.has(id) ? [[id, this.labels.get(id)!.label]] : [])));
  }

  private async named<T extends { name: string; data?: unknown }>(jobs: T[]): Promise<T[]> {
    const jobIdOf = (job: T) => (job.data as Partial<FireJobData> | undefined)?.jobId;
    const labels = await this.labelsOf(jobs.map(jobIdOf));
    for (const job of jobs) {
      const label = labels.get(jobIdOf(job) ?? '');
      if (label) job.name = label;
    }
    return jobs;
  }

  override async getJobs(...args: Parameters<Queue['getJobs']>) {
    return this.named(await super.getJobs(...args));
  }

  override async getJob(...args: Parameters<Queue['getJob']>) {
    const job = await super.getJob(...args);
    if (job) await this.named([job]);
    return job;
  }

  override async getJobSchedulers(start = 0, end = -1, asc = true) {
    const bounded = end < 0 || end - start >= this.schedulerLimit ? start + this.schedulerLimit - 1 : end;
    const schedulers = await super.getJobSchedulers(start, bounded, asc);
    const labels = await this.labelsOf(schedulers.map((s) => parseSchedulerId(s.key)?.jobId));
    return schedulers.map((s) => {
      const label = labels.get(parseSchedulerId(s.key)?.jobId ?? '');
      return label ? { ...s, name: label } : s;
    });
  }
}

/** What the api's routes need of a loaded board. */
export interface Board {
  /** Answers one request from the board's own routes; `undefined` when none has its path and method. */
  answer(request: {
    method: string;
    url: string;
    headers: Record<string, string | string[] | undefined>;
    body: unknown;
  }): Promise<BoardAnswer>;
  close(): Promise<void>;
}

export type BoardAnswer =
  | { kind: 'answer'; status: number; headers: Record<string, string | string[]>; body: Buffer }
  | { kind: 'none'; allowed: string[] };

/** Headers of the board's answers that the api's own reply sets for itself. */
const HOP_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'date']);

export async function loadBoard(options: {
  basePath: string;
  fireQueue: FireQueue;
  connection: ConnectionOptions;
  prefix: string | undefined;
  schedulerLimit: number;
  namesOf: (ids: string[]) => Promise<Array<{ id: string; name: string; service: string }>>;
}): Promise<Board> {
  const { fireQueue, connection, prefix } = options;
  // One board queue per fire queue: the shards, and those of an earlier shard count still
  // holding jobs (the list is refreshed as a page is asked for, from Redis at most every 10 s).
  const boardQueues = new Map<string, BoardQueue>();
  const boardQueueOf = (name: string) => {
    let boardQueue = boardQueues.get(name);
    if (!boardQueue) {
      boardQueue = new BoardQueue(name, { connection, ...(prefix === undefined ? {} : { prefix }) });
      boardQueue.namesOf = options.namesOf;
      boardQueue.schedulerLimit = options.schedulerLimit;
      boardQueue.on('error', () => {});
      boardQueues.set(name, boardQueue);
    }
    return new BullMQAdapter(boardQueue, { readOnlyMode: true });
  };
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(options.basePath);
  const board = createBullBoard({
    queues: fireQueue.shards.map((shard) => boardQueueOf(shard.name)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Tickwork' } },
  });
  let shown = fireQueue.shards.map((shard) => shard.name).join(',');
  const refresh = async () => {
    const names = (await fireQueue.knownShards().catch(() => fireQueue.shards)).map((shard) => shard.name);
    if (names.join(',') === shown) return;
    shown = names.join(',');
    board.replaceQueues(names.map(boardQueueOf));
  };

  // The board's routes, to tell a path it has (another method: 405) from one it has not (404).
  const routes: Array<{ pattern: RegExp; methods: string[] }> = [];
  const inner: FastifyInstance = Fastify({ logger: false, routerOptions: { ignoreTrailingSlash: true } });
  inner.addHook('onRoute', (route) => {
    routes.push({ pattern: patternOf(route.url), methods: [route.method].flat() });
  });
  const NONE = 'x-tickwork-board-none';
  inner.setNotFoundHandler((_request, reply) => reply.code(404).header(NONE, '1').send());
  await inner.register(serverAdapter.registerPlugin(), { prefix: options.basePath });
  await inner.ready();

  return {
    async answer(request) {
      await refresh();
      const headers = { ...request.headers };
      delete headers['content-length'];
      const response = await inner.inject({
        method: request.method as 'GET',
        url: request.url,
        headers,
        ...(request.body === undefined ? {} : { payload: JSON.stringify(request.body) }),
      });
      if (response.headers[NONE] !== undefined) {
        const path = request.url.split('?')[0]!;
        return {
          kind: 'none',
          allowed: [...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods))].sort(),
        };
      }
      const kept: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (value !== undefined && !HOP_HEADERS.has(name)) kept[name] = Array.isArray(value) ? value : String(value);
      }
      return { kind: 'answer', status: response.statusCode, headers: kept, body: response.rawPayload };
    },
    async close() {
      await inner.close();
      await Promise.all([...boardQueues.values()].map((boardQueue) => closeQueue(boardQueue)));
    },
  };
}
