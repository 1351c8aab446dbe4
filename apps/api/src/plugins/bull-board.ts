/**
 * Bull Board at /admin/queues for operators, behind the admin token (HTTP Basic with any user
 * name and the token as password, or Bearer). Read-only: changes to schedules belong to the
 * API, which keeps Postgres in step.
 *
 * Its schedulers page reads every scheduler, and for each up to two more jobs: with 100,000
 * schedulers one page load took 12 s, 24 MB of JSON and 660 MB of api memory (measured here).
 * The board's queue therefore lists only the BOARD_SCHEDULER_LIMIT schedulers due soonest; the
 * queue's card still shows the full count, and GET /v1/jobs lists every job.
 */
import fp from 'fastify-plugin';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import { TickworkError } from '@tickwork/core';
import { jobNames } from '@tickwork/db';
import { closeQueue, parseSchedulerId, type FireJobData } from '@tickwork/queue';
import { isAdminToken } from './auth.ts';
import { sendProblem } from './errors.ts';

const BULL_BOARD_PATH = '/admin/queues';

/** How many schedulers the board's schedulers page lists (the soonest due). */
export const BOARD_SCHEDULER_LIMIT = 100;

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
    const bounded = end < 0 || end - start >= BOARD_SCHEDULER_LIMIT ? start + BOARD_SCHEDULER_LIMIT - 1 : end;
    const schedulers = await super.getJobSchedulers(start, bounded, asc);
    const labels = await this.labelsOf(schedulers.map((s) => parseSchedulerId(s.key)?.jobId));
    return schedulers.map((s) => {
      const label = labels.get(parseSchedulerId(s.key)?.jobId ?? '');
      return label ? { ...s, name: label } : s;
    });
  }
}

function tokenOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+(\S+)$/i.exec(header);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : decoded.slice(colon + 1);
}

export default fp<{ adminToken: string | undefined }>(
  async (app, options) => {
    const { connection, prefix } = app.fireQueue.queue.opts;
    // One board queue per fire queue: the shards, and those of an earlier shard count still
    // holding jobs (the list is refreshed as a page is asked for, from Redis at most every 10 s).
    const boardQueues = new Map<string, BoardQueue>();
    const boardQueueOf = (name: string) => {
      let boardQueue = boardQueues.get(name);
      if (!boardQueue) {
        boardQueue = new BoardQueue(name, { connection, prefix });
        boardQueue.namesOf = (ids) => jobNames(app.readDb, ids);
        boardQueue.on('error', () => {});
        boardQueues.set(name, boardQueue);
      }
      return new BullMQAdapter(boardQueue, { readOnlyMode: true });
    };
    app.addHook('onClose', async () => {
      await Promise.all([...boardQueues.values()].map((boardQueue) => closeQueue(boardQueue)));
    });
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(BULL_BOARD_PATH);
    const board = createBullBoard({
      queues: app.fireQueue.shards.map((shard) => boardQueueOf(shard.name)),
      serverAdapter,
      options: { uiConfig: { boardTitle: 'Tickwork' } },
    });
    let shown = app.fireQueue.shards.map((shard) => shard.name).join(',');
    const refresh = async () => {
      const names = (await app.fireQueue.knownShards().catch(() => app.fireQueue.shards)).map((shard) => shard.name);
      if (names.join(',') === shown) return;
      shown = names.join(',');
      board.replaceQueues(names.map(boardQueueOf));
    };
    await app.register(async (scope) => {
      scope.addHook('onRequest', async (request, reply) => {
        if (!isAdminToken(tokenOf(request.headers.authorization), options.adminToken)) {
          reply.header('www-authenticate', 'Basic realm="Tickwork operators", charset="UTF-8"');
          // Sent here, not thrown: Bull Board's routes have an error handler of their own,
          // which would turn the 401 into a 500.
          return sendProblem(
            request,
            reply,
            new TickworkError(
              'unauthorized',
              'Operators only: use the admin token (as the Basic password, or Bearer).',
            ),
          );
        }
        await refresh();
      });
      await scope.register(serverAdapter.registerPlugin(), { prefix: BULL_BOARD_PATH });
    });
  },
  { name: 'bull-board', dependencies: ['queue', 'db'] },
);
