/**
 * The reconciler: Postgres is the truth, Redis a cache of it. One pass walks every active job
 * (keyset pages) and makes BullMQ match it, then removes what no job accounts for:
 * - `missing`: the job's scheduler (or one-shot) is not in Redis → registered again;
 * - `stuck`: the scheduler is there but has no pending next occurrence (BullMQ #3272, #3381:
 *   schedulers that silently stop) → registered again;
 * - `catchup`: a re-registered job missed occurrences while its timer was gone → its latest
 *   missed occurrence is enqueued once; the misfire policy, applied when it fires, decides
 *   whether it is delivered or recorded as missed;
 * - `stale`: a scheduler of an older version than Postgres holds → removed;
 * - `orphan`: a scheduler of a job that is deleted, paused, completed or unknown → removed;
 * - `run`: a run still open (running, retrying) whose BullMQ job is gone (Redis lost it while it
 *   waited for a worker or a retry) → enqueued again under the same BullMQ id; it keeps its run
 *   id. This covers scheduled occurrences and the runs the api recorded itself (run now, replay).
 * Every repair is idempotent, so a pass can run on any worker, twice, or after a FLUSHALL.
 */
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { catchUpOf, type Job } from '@tickwork/core';
import {
  activeJobsPage,
  jobFromRow,
  jobStatesOf,
  openRuns,
  type Database,
  type JobRow,
  type OpenRun,
} from '@tickwork/db';
import {
  FireQueue,
  OCCURRENCE_OPTIONS,
  applyRegistration,
  redisOptionsFrom,
  FIRE_QUEUE,
  catchUpJobIdOf,
  manualJobIdOf,
  onceJobIdOf,
  parseSchedulerId,
  registrationOf,
  replayJobIdOf,
  schedulerIdOf,
  schedulerOccurrenceIdOf,
  type FireJobData,
  type Registration,
} from '@tickwork/queue';

export const REPAIR_KINDS = ['missing', 'stuck', 'catchup', 'stale', 'orphan', 'run'] as const;
export type RepairKind = (typeof REPAIR_KINDS)[number];
export type RepairCounts = Record<RepairKind, number>;

export interface ReconcileReport {
  /** The instant the pass judged against, epoch ms. */
  now: number;
  jobs: number;
  schedulers: number;
  repairs: RepairCounts;
  /** Schedulers that look orphaned but may belong to a transaction still in flight. */
  suspects: number;
  durationMs: number;
  /** Set when the pass did nothing because another one was still running. */
  skipped?: string;
}

export interface ReconcileOptions {
  db: Kysely<Database>;
  /** A queue handle on `fire` (with the cron repeat strategy). */
  queue: Queue;
  /** A plain connection to the same Redis, for the bulk reads BullMQ has no call for. */
  redis: Redis;
  logger?: Logger;
  now?: number;
  /** Active jobs read per Postgres page. @defaultValue 1000 */
  pageSize?: number;
  /** Redis writes in flight at once. @defaultValue 50 */
  concurrency?: number;
  /** Called once per kind with a non-zero count (a metrics counter plugs in here). */
  onRepair?: (kind: RepairKind, count: number) => void;
}

/**
 * An api registers a job in Redis before its commit: for that moment Redis is ahead of Postgres.
 * Such schedulers are only suspects in the pass that first sees them, and removed by the next
 * pass that still finds them unaccounted for. A job id whose UUIDv7 time is older than this
 * cannot belong to a create still in flight, and its scheduler goes at once.
 */
const CREATE_IN_FLIGHT_MAX_MS = 5 * 60_000;
/** A scheduler's current occurrence that started this long ago without a successor is stuck. */
const STARTED_WITHOUT_SUCCESSOR_MS = 60_000;
const SUSPECTS_TTL_S = 3_600;
/** An open run younger than this may be mid-flight between Postgres and Redis: left alone. */
const OPEN_RUN_MIN_AGE_MS = 2 * 60_000;

function uuidv7Time(id: string): number {
  return Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16);
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await work(item);
    }
  });
  await Promise.all(lanes);
}

type Action =
  | { kind: 'missing' | 'stuck'; job: Job; registration: Registration; catchUpFrom: number | null; runCount: number }
  | { kind: 'catchup'; job: Job; at: number };

/**
 * A pass that outlasts the interval (a rebuild of 100k schedulers) must not meet the next one,
 * taken by another worker: two would each enqueue their own catch-up for a job. One pass at a
 * time, fleet-wide, under a lock that expires should its holder die.
 */
const PASS_LOCK_MS = 5 * 60_000;

export async function reconcile(options: ReconcileOptions): Promise<ReconcileReport> {
  const lockKey = options.queue.toKey('tickwork:reconcile-lock');
  const token = `${process.pid}:${Math.random().toString(36).slice(2)}`;
  if ((await options.redis.set(lockKey, token, 'PX', PASS_LOCK_MS, 'NX')) !== 'OK') {
    const now = options.now ?? Date.now();
    const repairs = Object.fromEntries(REPAIR_KINDS.map((kind) => [kind, 0])) as RepairCounts;
    return { now, jobs: 0, schedulers: 0, repairs, suspects: 0, durationMs: 0, skipped: 'another pass is running' };
  }
  try {
    return await reconcilePass(options);
  } finally {
    // Release only our own lock (it may have expired and been taken by another pass).
    await options.redis
      .eval(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
        1,
        lockKey,
        token,
      )
      .catch(() => {});
  }
}

async function reconcilePass(options: ReconcileOptions): Promise<ReconcileReport> {
  const started = Date.now();
  const now = options.now ?? started;
  const pageSize = options.pageSize ?? 1_000;
  const concurrency = options.concurrency ?? 50;
  const { db, queue, redis } = options;
  const repairs: RepairCounts = { missing: 0, stuck: 0, catchup: 0, stale: 0, orphan: 0, run: 0 };

  // Every scheduler Redis holds, with its next occurrence (the `repeat` sorted set's score).
  const repeatKey = queue.toKey('repeat');
  const schedulers = new Map<string, number>();
  for (let start = 0; ; start += 10_000) {
    const chunk = (await redis.zrange(repeatKey, start, String(start + 9_999), 'WITHSCORES')) as unknown as unknown[];
    // RESP2 answers a flat [member, score, …]; RESP3 answers [[member, score], …].
    const pairs = Array.isArray(chunk[0])
      ? (chunk as [string, string][])
      : Array.from({ length: chunk.length / 2 }, (_, i) => [chunk[2 * i], chunk[2 * i + 1]] as [string, string]);
    for (const [member, score] of pairs) schedulers.set(String(member), Number(score));
    if (pairs.length < 10_000) break;
  }
  const versionsByJob = new Map<string, number[]>();
  for (const id of schedulers.keys()) {
    const parsed = parseSchedulerId(id);
    if (!parsed) continue;
    const list = versionsByJob.get(parsed.jobId) ?? [];
    list.push(parsed.version);
    versionsByJob.set(parsed.jobId, list);
  }

  const accounted = new Set<string>();
  const staleIds: string[] = [];
  let jobs = 0;
  let afterId: string | undefined;
  for (;;) {
    const rows = await activeJobsPage(db, afterId, pageSize);
    if (rows.length === 0) break;
    afterId = rows.at(-1)!.id;
    jobs += rows.length;
    const actions = await judgePage(rows, now, redis, queue);
    for (const row of rows) {
      for (const version of versionsByJob.get(row.id) ?? []) {
        const id = schedulerIdOf(row.id, version);
        if (version === row.version) accounted.add(id);
        else if (version < row.version) staleIds.push(id);
        // A newer version than Postgres holds: an update in flight, judged with the orphans.
      }
    }
    await eachLimited(actions, concurrency, async (action) => {
      if (action.kind === 'catchup') {
        await enqueueCatchUp(queue, action.job, action.at, now);
        repairs.catchup++;
        return;
      }
      if (action.kind === 'stuck' && action.registration.kind === 'scheduler') {
        await queue.removeJobScheduler(action.registration.schedulerId);
      }
      await applyRegistration(queue, action.job, action.registration, now);
      repairs[action.kind]++;
      if (action.catchUpFrom !== null) {
        // The first occurrence that has not run is the job's nextRunAt: catch up from there.
        const at = catchUpOf(action.job, action.catchUpFrom - 1, now, action.runCount);
        if (at !== undefined) {
          await enqueueCatchUp(queue, action.job, at, now);
          repairs.catchup++;
        }
      }
    });
    if (rows.length < pageSize) break;
  }

  await eachLimited(staleIds, concurrency, async (id) => {
    await queue.removeJobScheduler(id);
    repairs.stale++;
  });

  // Schedulers no active job accounted for: judged against Postgres as it stands now.
  const stale = new Set(staleIds);
  const unaccounted = [...schedulers.keys()].filter(
    (id) => !accounted.has(id) && !stale.has(id) && parseSchedulerId(id),
  );
  const suspectsKey = queue.toKey('tickwork:reconcile-suspects');
  const previousSuspects = new Set(await redis.smembers(suspectsKey));
  const suspects: string[] = [];
  const removals: Array<{ id: string; kind: 'stale' | 'orphan' }> = [];
  for (let i = 0; i < unaccounted.length; i += pageSize) {
    const ids = unaccounted.slice(i, i + pageSize);
    const states = await jobStatesOf(db, [...new Set(ids.map((id) => parseSchedulerId(id)!.jobId))]);
    for (const id of ids) {
      const { jobId, version } = parseSchedulerId(id)!;
      const state = states.get(jobId);
      if (state && state.state === 'active' && state.version === version) continue;
      if (state && version < state.version) removals.push({ id, kind: 'stale' });
      else if (!state && uuidv7Time(jobId) < now - CREATE_IN_FLIGHT_MAX_MS) removals.push({ id, kind: 'orphan' });
      else if (previousSuspects.has(id)) removals.push({ id, kind: 'orphan' });
      else suspects.push(id);
    }
  }
  await eachLimited(removals, concurrency, async ({ id, kind }) => {
    await queue.removeJobScheduler(id);
    repairs[kind]++;
  });
  const pipeline = redis.multi().del(suspectsKey);
  if (suspects.length > 0) pipeline.sadd(suspectsKey, ...suspects).expire(suspectsKey, SUSPECTS_TTL_S);
  await pipeline.exec();

  repairs.run = await requeueOpenRuns(db, queue, redis, now, concurrency);

  for (const kind of REPAIR_KINDS) if (repairs[kind] > 0) options.onRepair?.(kind, repairs[kind]);
  const report: ReconcileReport = {
    now,
    jobs,
    schedulers: schedulers.size,
    repairs,
    suspects: suspects.length,
    durationMs: Date.now() - started,
  };
  const repaired = REPAIR_KINDS.some((kind) => repairs[kind] > 0);
  options.logger?.[repaired ? 'warn' : 'debug'](
    report,
    repaired ? 'reconcile repaired Redis from Postgres' : 'reconcile pass',
  );
  return report;
}

/** Decides what each job of a page needs, reading the state of its BullMQ jobs in one round trip. */
async function judgePage(rows: JobRow[], now: number, redis: Redis, queue: Queue): Promise<Action[]> {
  const repeatKey = queue.toKey('repeat');
  const judged = rows.map((row) => {
    const job = jobFromRow(row);
    return { row, job, registration: cheapRegistrationOf(job, now, row.run_count) };
  });
  // Each scheduler's next occurrence as it is now, not as the pass began: a busy scheduler moves
  // on every second, and a stale answer would make a healthy one look stuck.
  const nextOf = async (ids: string[]) => {
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.zscore(repeatKey, id);
    const results = (await pipeline.exec()) ?? [];
    return ids.map((_, i) => (results[i]?.[1] == null ? undefined : Number(results[i]![1])));
  };
  const schedulerIds = judged.flatMap(({ registration }) =>
    registration.kind === 'scheduler' ? [registration.schedulerId] : [],
  );
  const nexts = new Map(schedulerIds.map((id, i) => [id, i]));
  const nextValues = await nextOf(schedulerIds);
  const probes = judged.map(({ job, registration }) => {
    if (registration.kind === 'scheduler') {
      const next = nextValues[nexts.get(registration.schedulerId)!];
      return next === undefined ? undefined : schedulerOccurrenceIdOf(registration.schedulerId, next);
    }
    return registration.kind === 'delayed' || 'at' in job.schedule ? onceJobIdOf(job.id, job.version) : undefined;
  });
  const pipeline = redis.pipeline();
  for (const probe of probes) if (probe) pipeline.hmget(queue.toKey(probe), 'timestamp', 'processedOn', 'finishedOn');
  const results = (await pipeline.exec()) ?? [];
  let r = 0;
  const actions: Action[] = [];
  const suspects: Array<{ action: Action; schedulerId: string; next: number }> = [];
  judged.forEach(({ row, job, registration }, i) => {
    const probe = probes[i];
    const fields = probe ? ((results[r++]?.[1] as (string | null)[] | undefined) ?? [null, null, null]) : undefined;
    const exists = fields !== undefined && fields[0] !== null;
    const catchUpFrom = row.next_run_at?.getTime() ?? null;
    if (registration.kind === 'scheduler') {
      const next = nextValues[nexts.get(registration.schedulerId)!];
      const full = () => registrationOf(job, now, row.run_count);
      if (next === undefined) {
        actions.push({ kind: 'missing', job, registration: full(), catchUpFrom, runCount: row.run_count });
        return;
      }
      const startedLongAgo = fields?.[1] != null && Number(fields[1]) < now - STARTED_WITHOUT_SUCCESSOR_MS;
      if (!exists || fields?.[2] != null || startedLongAgo) {
        const action: Action = { kind: 'stuck', job, registration: full(), catchUpFrom, runCount: row.run_count };
        suspects.push({ action, schedulerId: registration.schedulerId, next });
      }
    } else if (registration.kind === 'delayed') {
      if (!exists) actions.push({ kind: 'missing', job, registration, catchUpFrom: null, runCount: row.run_count });
    } else if ('at' in job.schedule && !exists) {
      // An active one-shot whose instant has passed and whose BullMQ job is gone never ran:
      // registrationOf has nothing left to register, so it is caught up with.
      const at = Date.parse(job.schedule.at);
      if (at <= now) actions.push({ kind: 'catchup', job, at });
    }
  });
  // A scheduler that moved on between the two reads was only busy: stuck is one that did not.
  const again = await nextOf(suspects.map((s) => s.schedulerId));
  suspects.forEach((suspect, i) => {
    if (again[i] === suspect.next) actions.push(suspect.action);
  });
  return actions;
}

/**
 * What a job registers as, without time maths where the answer cannot depend on it: an active
 * recurring job with no end and no run limit is a scheduler under its id. Cron maths across
 * 100k jobs would cost most of a pass; the full registration is computed for repairs only.
 */
function cheapRegistrationOf(job: Job, now: number, runCount: number): Registration {
  if ('at' in job.schedule || job.endAt !== null || job.maxRuns !== null) return registrationOf(job, now, runCount);
  return { kind: 'scheduler', schedulerId: schedulerIdOf(job.id, job.version), repeat: { every: 0, startDate: 0 } };
}

/** The BullMQ ids an open run may live under: its scheduler's, a catch-up's, a one-shot's, or the api's own. */
function candidateIdsOf(run: OpenRun): string[] {
  if (run.trigger === 'manual') return [manualJobIdOf(run.jobId, run.id)];
  if (run.trigger === 'replay') return [replayJobIdOf(run.jobId, run.id)];
  const at = run.scheduledFor.getTime();
  if (run.schedule && typeof run.schedule === 'object' && 'at' in run.schedule)
    return [onceJobIdOf(run.jobId, run.jobVersion)];
  return [
    schedulerOccurrenceIdOf(schedulerIdOf(run.jobId, run.jobVersion), at),
    catchUpJobIdOf(run.jobId, run.jobVersion, at),
  ];
}

async function requeueOpenRuns(
  db: Kysely<Database>,
  queue: Queue,
  redis: Redis,
  now: number,
  concurrency: number,
): Promise<number> {
  const open = await openRuns(db, new Date(now - OPEN_RUN_MIN_AGE_MS));
  if (open.length === 0) return 0;
  const pipeline = redis.pipeline();
  for (const run of open) for (const id of candidateIdsOf(run)) pipeline.exists(queue.toKey(id));
  const results = (await pipeline.exec()) ?? [];
  let r = 0;
  const lost = open.filter((run) => {
    const found = candidateIdsOf(run).map(() => Number(results[r++]?.[1] ?? 0) > 0);
    return !found.includes(true);
  });
  await eachLimited(lost, concurrency, async (run) => {
    // A run the api recorded names itself in the data, so the worker delivers that run.
    const data: FireJobData =
      run.trigger === 'schedule'
        ? { jobId: run.jobId, version: run.jobVersion }
        : { jobId: run.jobId, version: run.jobVersion, runId: run.id };
    const bullJobId = candidateIdsOf(run).at(-1)!;
    await queue.add(FIRE_QUEUE, data, { ...OCCURRENCE_OPTIONS, jobId: bullJobId });
  });
  return lost.length;
}

async function enqueueCatchUp(queue: Queue, job: Job, at: number, now: number): Promise<void> {
  const data: FireJobData = { jobId: job.id, version: job.version };
  const bullJobId = 'at' in job.schedule ? onceJobIdOf(job.id, job.version) : catchUpJobIdOf(job.id, job.version, at);
  await queue.add(FIRE_QUEUE, data, { ...OCCURRENCE_OPTIONS, jobId: bullJobId, delay: Math.max(0, at - now) });
}

export interface Reconciler {
  run(now?: number): Promise<ReconcileReport>;
  close(): Promise<void>;
}

/**
 * A reconciler with connections of its own: a fast-failing queue handle (a pass that meets a
 * Redis outage fails and the next one retries) and a plain Redis connection for bulk reads.
 */
export function createReconciler(options: {
  db: Kysely<Database>;
  redisUrl: string;
  prefix: string;
  logger?: Logger;
  onRepair?: (kind: RepairKind, count: number) => void;
}): Reconciler {
  const fireQueue = new FireQueue({ redisUrl: options.redisUrl, prefix: options.prefix });
  const redis = new Redis(redisOptionsFrom(options.redisUrl, 'producer'));
  redis.on('error', () => {});
  return {
    run: (now) =>
      reconcile({
        db: options.db,
        queue: fireQueue.queue,
        redis,
        ...(now === undefined ? {} : { now }),
        ...(options.logger ? { logger: options.logger } : {}),
        ...(options.onRepair ? { onRepair: options.onRepair } : {}),
      }),
    async close() {
      await fireQueue.close();
      redis.disconnect();
    },
  };
}
