/**
 * What every chaos scenario shares: a database and BullMQ prefix of its own, a fleet of real
 * processes, a local receiver, and the three invariants judged from the ledger (Postgres) and
 * the receiver: every due occurrence delivered at least once, every delivery of one occurrence
 * under one `webhook-id`, one run row per occurrence; plus the lateness of each delivery.
 */
import { sql } from 'kysely';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  startFleet,
  type Fleet,
  ADMIN_TOKEN,
  call,
  type FleetEnv,
  type Proc,
  deletePrefix,
  startOwnRedisCluster,
  startSink,
  type Received,
  type Sink,
} from '@tickwork/testkit';

/** How long a chaos scenario runs its disturbance; `npm run chaos -- --soak` lengthens it. */
export const SOAK = process.env.TICKWORK_CHAOS_SOAK === '1';
export const scaled = (ms: number) => (SOAK ? ms * 10 : ms);

export interface ScenarioOptions {
  apis?: number;
  workers?: number;
  nginx?: boolean;
  /** A Redis of the scenario's own (when it flushes or restarts Redis). */
  redisUrl?: string;
  /**
   * Whether close() removes the scenario's keys from Redis (not for a Redis the test throws away).
   * @defaultValue true
   */
  cleanRedis?: boolean;
  /** Rewrites the database URL the processes use (to put a proxy in between). */
  databaseUrlFor?: (url: string) => string;
  env?: Record<string, string>;
}

export interface LedgerRun {
  id: string;
  jobId: string;
  scheduledFor: number;
  trigger: string;
  status: string;
  /** For `skipped` runs: why (`missed` is a slot the timer skipped, the misfire policy's outcome). */
  skipReason: string | null;
  attempts: number;
  jobVersion: number;
}

export interface CreatedJob {
  id: string;
  createdAt: number;
  everyMs: number;
  version: number;
}

export interface Scenario {
  db: TestDatabase;
  env: FleetEnv;
  fleet: Fleet;
  sink: Sink;
  token: string;
  api: Proc;
  createEveryJobs(count: number, everyMs: number, name: string): Promise<CreatedJob[]>;
  runs(): Promise<LedgerRun[]>;
  /** The runs and the callbacks received, read to be judged together (see {@link Ledger}). */
  ledger(): Promise<Ledger>;
  close(): Promise<void>;
}

/**
 * The runs table and the sink's callbacks as one reading. The workers keep firing while it is
 * taken, so the two are not one instant: `readAt` is the clock just before the runs were read,
 * and the callbacks are copied once the read is back. A run is committed before its callback is
 * sent, so every callback that arrived before `readAt` names a run the read saw; one that arrived
 * later may name a run committed after it, and {@link judge} does not count it as unknown.
 */
export interface Ledger {
  runs: LedgerRun[];
  received: Received[];
  readAt: number;
}

/**
 * `TICKWORK_CHAOS_REDIS_CLUSTER=1`: a scenario that uses the shared Redis runs on a Redis Cluster
 * of its own instead (3 masters, 3 replicas), with the fire queue in 3 shards under an untagged
 * prefix, so the scenarios that judge only through HTTP and the ledger (worker kill, Postgres
 * stop, rolling restart) run on a cluster unchanged. Those that read Redis themselves pass their
 * own `redisUrl` and stay on one Redis.
 */
const ON_CLUSTER = process.env.TICKWORK_CHAOS_REDIS_CLUSTER === '1';

export async function startScenario(options: ScenarioOptions = {}): Promise<Scenario> {
  const db = await createTestDatabase('tw_chaos');
  const cluster = ON_CLUSTER && options.redisUrl === undefined ? await startOwnRedisCluster() : undefined;
  const redisUrl = cluster ? `redis://${cluster.nodes[0]!.address}` : (options.redisUrl ?? testBaseUrls().redisUrl);
  const env: FleetEnv = {
    DATABASE_URL: options.databaseUrlFor ? options.databaseUrlFor(db.url) : db.url,
    REDIS_URL: redisUrl,
    BULLMQ_PREFIX: cluster ? testPrefix().replace(/[{}]/g, '') : testPrefix(),
    ...(cluster ? { REDIS_CLUSTER_NODES: cluster.nodesEnv, FIRE_QUEUE_SHARDS: '3' } : {}),
    WORKER_CONCURRENCY: '20',
    // The scenarios drive thousands of requests with one key: the per-key limit is not under test.
    RATE_LIMIT_PER_MINUTE: '10000000',
    ...options.env,
  };
  const sink = await startSink();
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet({
      apis: options.apis ?? 1,
      workers: options.workers ?? 2,
      nginx: options.nginx ?? false,
      env,
    });
  } catch (error) {
    await sink.close();
    await db.drop();
    await cluster?.stop();
    throw error;
  }
  const api = { url: fleet.url } as Proc;
  const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'chaos' } });
  if (service.status !== 201) throw new Error(`service: ${service.status} ${JSON.stringify(service.body)}`);
  const token = service.body.apiKey as string;
  const live = fleet;
  const readRuns = async (): Promise<LedgerRun[]> => {
    const result = await sql<{
      id: string;
      job_id: string;
      scheduled_for: Date;
      trigger: string;
      status: string;
      skip_reason: string | null;
      attempts: number;
      job_version: number;
    }>`select id, job_id, scheduled_for, trigger, status, skip_reason, attempts, job_version from runs`.execute(db.db);
    return result.rows.map((r) => ({
      id: r.id,
      jobId: r.job_id,
      scheduledFor: r.scheduled_for.getTime(),
      trigger: r.trigger,
      status: r.status,
      skipReason: r.skip_reason,
      attempts: r.attempts,
      jobVersion: r.job_version,
    }));
  };

  return {
    db,
    env,
    fleet: live,
    sink,
    token,
    api,
    async createEveryJobs(count, everyMs, name) {
      const jobs: CreatedJob[] = [];
      for (let i = 0; i < count; i++) {
        const created = await call(api, 'POST', '/v1/jobs', {
          token,
          body: { name: `${name}-${i}`, schedule: { everyMs }, target: { url: `${sink.url}/${name}/${i}` } },
        });
        if (created.status !== 201) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
        jobs.push({
          id: created.body.id,
          createdAt: Date.parse(created.body.createdAt),
          everyMs,
          version: created.body.version,
        });
      }
      return jobs;
    },
    runs: readRuns,
    async ledger() {
      const readAt = Date.now();
      const runs = await readRuns();
      return { runs, received: [...sink.received], readAt };
    },
    async close() {
      await live.stop();
      await sink.close();
      await db.drop();
      if (cluster) await cluster.stop();
      else if (options.cleanRedis !== false) await deletePrefix(redisUrl, env.BULLMQ_PREFIX).catch(() => {});
    },
  };
}

export interface Verdict {
  /** Occurrences the schedules named inside the window. */
  expected: number;
  /** Of those, the ones without a run row. */
  lost: Array<{ jobId: string; at: number }>;
  /** Occurrences delivered under more than one `webhook-id`. */
  twoIds: Array<{ jobId: string; at: string; ids: string[] }>;
  /** `webhook-id`s that name no run. */
  unknownIds: string[];
  /** Runs in the window that are not `succeeded` (still running, retrying, dead…), missed slots aside. */
  notSucceeded: LedgerRun[];
  /** Slots the timer skipped (workers paused or behind), recorded `skipped`/`missed` per the misfire policy. */
  missed: LedgerRun[];
  /** Succeeded runs the receiver never saw. */
  undelivered: string[];
  /** Largest (last delivery − scheduled instant) over the window's runs, ms. */
  maxLatenessMs: number;
  /** Callbacks received for the window's occurrences (retries and redeliveries included). */
  deliveries: number;
}

/** Every interval job's instants in [from, until]: `createdAt + k·everyMs`, k ≥ 1. */
export function instantsOf(job: CreatedJob, from: number, until: number): number[] {
  const out: number[] = [];
  const first = Math.max(1, Math.ceil((from - job.createdAt) / job.everyMs));
  for (let t = job.createdAt + first * job.everyMs; t <= until; t += job.everyMs) out.push(t);
  return out;
}

export function judge(input: { jobs: CreatedJob[]; ledger: Ledger; from: number; until: number }): Verdict {
  const jobIds = new Set(input.jobs.map((j) => j.id));
  const { readAt } = input.ledger;
  const runs = input.ledger.runs.filter((r) => jobIds.has(r.jobId));
  const runsByKey = new Map(
    runs.filter((r) => r.trigger === 'schedule').map((r) => [`${r.jobId}@${r.scheduledFor}`, r]),
  );
  const runIds = new Set(runs.map((r) => r.id));
  const received = input.ledger.received.filter((c) => jobIds.has(String(c.headers['tickwork-job-id'])));
  const scheduledAt = (c: Received) => Date.parse(String(c.headers['tickwork-scheduled-for']));

  const lost: Verdict['lost'] = [];
  let expected = 0;
  for (const job of input.jobs) {
    for (const at of instantsOf(job, input.from, input.until)) {
      expected++;
      if (!runsByKey.has(`${job.id}@${at}`)) lost.push({ jobId: job.id, at });
    }
  }

  const idsByOccurrence = new Map<string, Set<string>>();
  const lastDelivery = new Map<string, number>();
  const arrivedBeforeRead = new Set<string>();
  for (const callback of received) {
    const h = callback.headers;
    const key = `${h['tickwork-job-id']}@${h['tickwork-scheduled-for']}@${h['tickwork-trigger']}`;
    const id = String(callback.headers['webhook-id']);
    idsByOccurrence.set(key, (idsByOccurrence.get(key) ?? new Set()).add(id));
    lastDelivery.set(id, Math.max(lastDelivery.get(id) ?? 0, callback.at));
    if (callback.at < readAt) arrivedBeforeRead.add(id);
  }
  const twoIds = [...idsByOccurrence.entries()]
    .filter(([, ids]) => ids.size > 1)
    .map(([key, ids]) => ({ jobId: key.split('@')[0]!, at: key.split('@')[1]!, ids: [...ids] }));
  const unknownIds = [...arrivedBeforeRead].filter((id) => !runIds.has(id));

  const inWindow = runs.filter((r) => r.scheduledFor >= input.from && r.scheduledFor <= input.until);
  const isMissed = (r: LedgerRun) => r.status === 'skipped' && r.skipReason === 'missed';
  const missed = inWindow.filter(isMissed);
  const notSucceeded = inWindow.filter((r) => r.status !== 'succeeded' && !isMissed(r));
  const undelivered = inWindow.filter((r) => r.status === 'succeeded' && !lastDelivery.has(r.id)).map((r) => r.id);
  let maxLatenessMs = 0;
  for (const run of inWindow) {
    const at = lastDelivery.get(run.id);
    if (at !== undefined) maxLatenessMs = Math.max(maxLatenessMs, at - run.scheduledFor);
  }
  const deliveries = received.filter((c) => scheduledAt(c) >= input.from && scheduledAt(c) <= input.until).length;
  return { expected, lost, twoIds, unknownIds, notSucceeded, missed, undelivered, maxLatenessMs, deliveries };
}

/** One line for the test log: what a scenario measured (docs/guarantees.md quotes these). */
export function report(name: string, figures: Record<string, number | string>): void {
  console.log(
    `[chaos] ${name}: ${Object.entries(figures)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
}
