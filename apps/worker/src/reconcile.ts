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
 * - `moved`: a scheduler or a pending one-shot in a fire queue other than its job's shard (after a
 *   change of FIRE_QUEUE_SHARDS) → removed there, then registered on its shard like a missing one
 *   (with the catch-up of an occurrence missed in between), so each occurrence is queued once;
 *   occurrences already queued stay where they are and are consumed there, and a fire queue of an
 *   earlier shard count is forgotten once it has stayed empty for `retireAfterMs`.
 * Every repair is idempotent, so a pass can run on any worker, twice, or after a FLUSHALL.
 */
import type { Kysely } from 'kysely';
import pMap from 'p-map';
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
  addOccurrence,
  applyRegistration,
  catchUpJobIdOf,
  idSet,
  jobTimesOf,
  schedulerNextsOf,
  schedulerPages,
  takeLock,
  type FireQueue,
  type FireShard,
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

export const REPAIR_KINDS = ['missing', 'stuck', 'catchup', 'stale', 'orphan', 'run', 'moved'] as const;
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
  /** The `fire` queue's handle; a fail-fast one, so a pass that meets a Redis outage fails and the next retries. */
  fireQueue: FireQueue;
  logger?: Logger;
  now?: number;
  /** Active jobs read per Postgres page. @defaultValue 1000 */
  pageSize?: number;
  /** Redis writes in flight at once. @defaultValue 50 */
  concurrency?: number;
  /**
   * How long a fire queue of an earlier shard count must stay empty before it is forgotten (an api
   * or worker still running with that count could put a job there until it is replaced).
   * @defaultValue 5 minutes
   */
  retireAfterMs?: number;
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
const RETIRE_AFTER_MS = 5 * 60_000;
/** An open run younger than this may be mid-flight between Postgres and Redis: left alone. */
const OPEN_RUN_MIN_AGE_MS = 2 * 60_000;

function uuidv7Time(id: string): number {
  return Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16);
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
  const release = await takeLock(options.fireQueue.home, 'reconcile', PASS_LOCK_MS);
  if (!release) {
    const now = options.now ?? Date.now();
    const repairs = Object.fromEntries(REPAIR_KINDS.map((kind) => [kind, 0])) as RepairCounts;
    return { now, jobs: 0, schedulers: 0, repairs, suspects: 0, durationMs: 0, skipped: 'another pass is running' };
  }
  try {
    return await reconcilePass(options);
  } finally {
    await release();
  }
}

async function reconcilePass(options: ReconcileOptions): Promise<ReconcileReport> {
  const started = Date.now();
  const now = options.now ?? started;
  const pageSize = options.pageSize ?? 1_000;
  const concurrency = options.concurrency ?? 50;
  const { db, fireQueue } = options;
  const queueOf = (jobId: string) => fireQueue.shardOf(jobId).queue;
  const repairs: RepairCounts = { missing: 0, stuck: 0, catchup: 0, stale: 0, orphan: 0, run: 0, moved: 0 };

  // Every scheduler Redis holds, with its next occurrence, in every fire queue. One in a queue
  // other than its job's shard is removed there first, and then judged missing on its shard.
  // Read afresh, not from the handle's cache: a pass must see a newer shard count's queues at once.
  const shards = await fireQueue.knownShards({ fresh: true });
  const moving = shards.length > fireQueue.shards.length;
  if (!(await fireQueue.isCurrentLayout())) {
    // A worker started with an earlier shard count than the latest one's: it would move jobs
    // back. The passes of the workers started with the latest count do the work.
    const skipped = 'another shard count is current (FIRE_QUEUE_SHARDS changed)';
    return { now, jobs: 0, schedulers: 0, repairs, suspects: 0, durationMs: Date.now() - started, skipped };
  }
  const schedulers = new Map<string, number>();
  const foundIn = new Map<string, FireShard>();
  const misplaced: Array<{ id: string; shard: FireShard }> = [];
  for (const shard of shards) {
    for await (const page of schedulerPages(shard)) {
      for (const { id, next } of page) {
        const parsed = parseSchedulerId(id);
        if (parsed && fireQueue.shardOf(parsed.jobId) !== shard) {
          misplaced.push({ id, shard });
          continue;
        }
        schedulers.set(id, next);
        foundIn.set(id, shard);
      }
    }
  }
  await pMap(
    misplaced,
    async ({ id, shard }) => {
      await shard.queue.removeJobScheduler(id);
      repairs.moved++;
    },
    { concurrency },
  );
  const removeScheduler = (id: string) =>
    (foundIn.get(id) ?? fireQueue.shardOf(parseSchedulerId(id)?.jobId ?? '')).queue.removeJobScheduler(id);
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
    const actions = await judgePage(rows, now, fireQueue);
    if (moving) repairs.moved += await movePendingOneShots(actions, fireQueue, shards);
    for (const row of rows) {
      for (const version of versionsByJob.get(row.id) ?? []) {
        const id = schedulerIdOf(row.id, version);
        if (version === row.version) accounted.add(id);
        else if (version < row.version) staleIds.push(id);
        // A newer version than Postgres holds: an update in flight, judged with the orphans.
      }
    }
    await pMap(
      actions,
      async (action) => {
        const queue = queueOf(action.job.id);
        if (action.kind === 'catchup') {
          await enqueueCatchUp(queue, action.job, action.at, now);
          repairs.catchup++;
          return;
        }
        if (action.kind === 'stuck' && action.registration.kind === 'scheduler') {
          await queue.removeJobScheduler(action.registration.schedulerId);
        }
        // A scheduler's first occurrence is computed as it is written, not as the pass began:
        // BullMQ starts an interval scheduler whose startDate has passed at the current instant,
        // which would move the job's phase (a long pass made every re-registered job fire off it).
        const registration =
          action.registration.kind === 'scheduler'
            ? registrationOf(action.job, Date.now(), action.runCount)
            : action.registration;
        await applyRegistration(queue, action.job, registration, now);
        repairs[action.kind]++;
        if (action.catchUpFrom !== null) {
          // The first occurrence that has not run is the job's nextRunAt: catch up from there.
          const at = catchUpOf(action.job, action.catchUpFrom - 1, now, action.runCount);
          if (at !== undefined) {
            await enqueueCatchUp(queue, action.job, at, now);
            repairs.catchup++;
          }
        }
      },
      { concurrency },
    );
    if (rows.length < pageSize) break;
  }

  await pMap(
    staleIds,
    async (id) => {
      await removeScheduler(id);
      repairs.stale++;
    },
    { concurrency },
  );

  // Schedulers no active job accounted for: judged against Postgres as it stands now.
  const stale = new Set(staleIds);
  const unaccounted = [...schedulers.keys()].filter(
    (id) => !accounted.has(id) && !stale.has(id) && parseSchedulerId(id),
  );
  const suspectSet = idSet(fireQueue.home, 'reconcile-suspects');
  const previousSuspects = await suspectSet.read();
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
  await pMap(
    removals,
    async ({ id, kind }) => {
      await removeScheduler(id);
      repairs[kind]++;
    },
    { concurrency },
  );
  await suspectSet.replace(suspects, SUSPECTS_TTL_S);

  repairs.run = await requeueOpenRuns(db, fireQueue, shards, now, concurrency);
  // A fire queue of an earlier shard count with nothing left in it is forgotten (workers stop
  // consuming it when they next start).
  if (moving) {
    const retireAfterMs = options.retireAfterMs ?? RETIRE_AFTER_MS;
    for (const shard of shards.slice(fireQueue.shards.length)) {
      if ((await fireQueue.emptyFor(shard.name, await isEmpty(shard), now)) >= retireAfterMs) {
        await fireQueue.retire(shard.name);
      }
    }
  }

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
async function judgePage(rows: JobRow[], now: number, fireQueue: FireQueue): Promise<Action[]> {
  const judged = rows.map((row) => {
    const job = jobFromRow(row);
    return { row, job, registration: cheapRegistrationOf(job, now, row.run_count) };
  });
  // Each scheduler's next occurrence as it is now, not as the pass began: a busy scheduler moves
  // on every second, and a stale answer would make a healthy one look stuck.
  const nextOf = (ids: string[]) =>
    perShard(
      fireQueue,
      ids,
      (id) => parseSchedulerId(id)!.jobId,
      (shard, some) => schedulerNextsOf(shard, some),
    );
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
  const probed = judged.flatMap(({ job }, i) => (probes[i] === undefined ? [] : [{ id: probes[i], jobId: job.id }]));
  const times = await perShard(
    fireQueue,
    probed,
    (probe) => probe.jobId,
    (shard, some) =>
      jobTimesOf(
        shard,
        some.map((probe) => probe.id),
      ),
  );
  let r = 0;
  const actions: Action[] = [];
  const suspects: Array<{ action: Action; schedulerId: string; next: number }> = [];
  judged.forEach(({ row, job, registration }, i) => {
    // The pending BullMQ job that shows the job is alive (undefined: none to look for, or gone).
    const pending = probes[i] === undefined ? undefined : times[r++];
    const catchUpFrom = row.next_run_at?.getTime() ?? null;
    if (registration.kind === 'scheduler') {
      const next = nextValues[nexts.get(registration.schedulerId)!];
      const full = () => registrationOf(job, now, row.run_count);
      if (next === undefined) {
        actions.push({ kind: 'missing', job, registration: full(), catchUpFrom, runCount: row.run_count });
        return;
      }
      const startedLongAgo =
        pending?.processedOn !== undefined && pending.processedOn < now - STARTED_WITHOUT_SUCCESSOR_MS;
      if (!pending || pending.finishedOn !== undefined || startedLongAgo) {
        const action: Action = { kind: 'stuck', job, registration: full(), catchUpFrom, runCount: row.run_count };
        suspects.push({ action, schedulerId: registration.schedulerId, next });
      }
    } else if (registration.kind === 'delayed') {
      if (!pending) actions.push({ kind: 'missing', job, registration, catchUpFrom: null, runCount: row.run_count });
    } else if ('at' in job.schedule && !pending) {
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
  fireQueue: FireQueue,
  shards: FireShard[],
  now: number,
  concurrency: number,
): Promise<number> {
  const open = await openRuns(db, new Date(now - OPEN_RUN_MIN_AGE_MS));
  if (open.length === 0) return 0;
  // Few runs stay open this long, so BullMQ's own lookup (the whole job, where only its existence
  // matters) costs little here.
  const found = await Promise.all(
    open.map(async (run) => {
      // In any fire queue: one of an earlier shard count still holds what was queued before.
      const ids = candidateIdsOf(run);
      const jobs = await Promise.all(shards.flatMap((shard) => ids.map((id) => shard.queue.getJob(id))));
      return jobs.some((job) => job !== undefined && job !== null);
    }),
  );
  const lost = open.filter((_, i) => !found[i]);
  await pMap(
    lost,
    async (run) => {
      // A run the api recorded names itself in the data, so the worker delivers that run.
      const data: FireJobData =
        run.trigger === 'schedule'
          ? { jobId: run.jobId, version: run.jobVersion }
          : { jobId: run.jobId, version: run.jobVersion, runId: run.id };
      await addOccurrence(fireQueue.shardOf(run.jobId).queue, data, candidateIdsOf(run).at(-1)!);
    },
    { concurrency },
  );
  return lost.length;
}

/**
 * Runs a read of per-job items on each item's shard (one round trip per shard) and gives the
 * answers back in the items' order.
 */
async function perShard<T, R>(
  fireQueue: FireQueue,
  items: T[],
  jobIdOf: (item: T) => string,
  read: (shard: FireShard, items: T[]) => Promise<R[]>,
): Promise<R[]> {
  if (fireQueue.shards.length === 1) return read(fireQueue.shards[0]!, items);
  const groups = new Map<FireShard, number[]>();
  items.forEach((item, i) => {
    const shard = fireQueue.shardOf(jobIdOf(item));
    const group = groups.get(shard) ?? [];
    group.push(i);
    groups.set(shard, group);
  });
  const answers = new Array<R>(items.length);
  await Promise.all(
    [...groups].map(async ([shard, indexes]) => {
      const got = await read(
        shard,
        indexes.map((i) => items[i]!),
      );
      indexes.forEach((index, j) => {
        answers[index] = got[j]!;
      });
    }),
  );
  return answers;
}

/**
 * A one-shot judged missing on its shard may still wait in another fire queue (queued before the
 * shard count changed): still delayed there, it is removed there and registered on its shard
 * (a move); already due, running or done there, it is left to that queue and not registered again.
 * Drops the actions that must not run; returns how many one-shots moved.
 */
async function movePendingOneShots(actions: Action[], fireQueue: FireQueue, shards: FireShard[]): Promise<number> {
  let moved = 0;
  for (let i = actions.length - 1; i >= 0; i--) {
    const action = actions[i]!;
    const oneShot = action.kind === 'catchup' ? 'at' in action.job.schedule : action.registration.kind === 'delayed';
    if (!oneShot) continue;
    const id = onceJobIdOf(action.job.id, action.job.version);
    const home = fireQueue.shardOf(action.job.id);
    for (const shard of shards) {
      if (shard === home) continue;
      const found = await shard.queue.getJob(id);
      if (!found) continue;
      if ((await found.getState()) === 'delayed') {
        await found.remove();
        moved++;
      } else {
        actions.splice(i, 1);
      }
      break;
    }
  }
  return moved;
}

/** Nothing left in a fire queue that a worker would take: no scheduler, no occurrence to run. */
async function isEmpty(shard: FireShard): Promise<boolean> {
  const counts = await shard.queue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'waiting-children');
  return Object.values(counts).every((count) => count === 0) && (await shard.queue.getJobSchedulersCount()) === 0;
}

async function enqueueCatchUp(queue: FireQueue['queue'], job: Job, at: number, now: number): Promise<void> {
  const data: FireJobData = { jobId: job.id, version: job.version };
  const bullJobId = 'at' in job.schedule ? onceJobIdOf(job.id, job.version) : catchUpJobIdOf(job.id, job.version, at);
  await addOccurrence(queue, data, bullJobId, at - now);
}

export interface Reconciler {
  run(now?: number): Promise<ReconcileReport>;
}

/** A reconciler on the given handle of the `fire` queue (the worker gives it its fail-fast one). */
export function createReconciler(options: Omit<ReconcileOptions, 'now'>): Reconciler {
  return { run: (now) => reconcile({ ...options, ...(now === undefined ? {} : { now }) }) };
}
