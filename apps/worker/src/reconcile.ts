/**
 * The reconciler: Postgres is the truth, Redis a cache of it. It makes BullMQ match Postgres,
 * then removes what no job accounts for:
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
 *
 * Two kinds of pass, neither holding every id in memory:
 * - steady (every interval): the jobs changed since the last pass (`updated_at`, an index scan)
 *   and the active jobs whose next run is overdue (a firing job moves it on with every run, so a
 *   scheduler that stopped or that Redis lost shows there). Its cost follows what changed or fell
 *   overdue, not the number of jobs.
 * - sweep (rare, `sweepIntervalMs`; and whenever the reconciler's marks are gone from Redis, i.e.
 *   Redis lost its data): every active job in Postgres keyset pages, then every scheduler in ZSCAN
 *   pages checked against Postgres, one page at a time.
 * Both cover every fire shard: a job is judged on its own shard, a scheduler in the shard it is
 * found in. While fire queues of an earlier shard count remain (a reshard), every pass is a sweep:
 * moving jobs needs every scheduler of the old queues read, which only the sweep does.
 * Every repair is idempotent, so a pass can run on any worker, twice, or after a FLUSHALL.
 */
import type { Kysely } from 'kysely';
import pMap from 'p-map';
import type { Logger } from 'pino';
import { catchUpOf, type Job } from '@tickwork/core';
import {
  activeJobsPage,
  changedJobsPage,
  overdueJobs,
  type ChangedCursor,
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
  schedulerIdScan,
  schedulerNextsOf,
  stateHash,
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

/**
 * `sweep`: every active job and every scheduler (rare; after Redis lost its data, always);
 * `steady`: what changed or fell overdue since the last pass; `auto`: a sweep when Redis lost the
 * reconciler's marks or the last sweep is `sweepIntervalMs` old, else steady.
 */
export type ReconcileMode = 'sweep' | 'steady' | 'auto';

export interface ReconcileReport {
  /** The instant the pass judged against, epoch ms. */
  now: number;
  /** What the pass was (`auto` picks one of the two). */
  mode: Exclude<ReconcileMode, 'auto'>;
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
  /** The fire queues' handle (every shard); a fail-fast one, so a pass that meets a Redis outage fails and the next retries. */
  fireQueue: FireQueue;
  logger?: Logger;
  now?: number;
  /** Active jobs read per Postgres page. @defaultValue 1000 */
  pageSize?: number;
  /** Redis writes in flight at once. @defaultValue 50 */
  concurrency?: number;
  /** @defaultValue 'sweep' ({@link createReconciler}'s passes: 'auto') */
  mode?: ReconcileMode;
  /** How old the last sweep may be before an `auto` pass sweeps again; 0: every pass. @defaultValue 600000 */
  sweepIntervalMs?: number;
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
export const DEFAULT_SWEEP_INTERVAL_MS = 10 * 60_000;
/**
 * A steady pass reads the jobs changed since the last pass began, less this: an api stamps
 * `updated_at` before its commit, so a change may become visible after a pass that began later.
 */
const CHANGE_MARGIN_MS = 2 * 60_000;
/**
 * A job whose next run is this far behind is looked at (a firing job moves it on with every
 * outcome): with a 30 s interval, a scheduler that stopped or that Redis lost is found within
 * 15 + 30 s of the occurrence it missed.
 */
const OVERDUE_AFTER_MS = 15_000;
/** Overdue jobs judged per steady pass, the most overdue first: a worker far behind makes many. */
const OVERDUE_MAX = 2_000;
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
    const mode = options.mode === 'steady' ? 'steady' : 'sweep';
    return {
      now,
      mode,
      jobs: 0,
      schedulers: 0,
      repairs,
      suspects: 0,
      durationMs: 0,
      skipped: 'another pass is running',
    };
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
  const { fireQueue } = options;
  // Every fire queue Redis may hold jobs in, read afresh, not from the handle's cache: a pass must
  // see a newer shard count's queues at once.
  const shards = await fireQueue.knownShards({ fresh: true });
  const moving = shards.length > fireQueue.shards.length;
  const requested = options.mode ?? 'sweep';
  if (!(await fireQueue.isCurrentLayout())) {
    // A worker started with an earlier shard count than the latest one's: it would move jobs
    // back. The passes of the workers started with the latest count do the work.
    const repairs = Object.fromEntries(REPAIR_KINDS.map((kind) => [kind, 0])) as RepairCounts;
    const skipped = 'another shard count is current (FIRE_QUEUE_SHARDS changed)';
    const mode = requested === 'steady' ? 'steady' : 'sweep';
    return { now, mode, jobs: 0, schedulers: 0, repairs, suspects: 0, durationMs: Date.now() - started, skipped };
  }
  const marks = stateHash(fireQueue.home, 'reconcile-state');
  const mark = await marks.read();
  const sweepEvery = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  // No marks: Redis lost its data (or this is the first pass ever), and with them every scheduler.
  // Jobs to move between shards: only a sweep reads every scheduler of the old queues.
  const mode: ReconcileMode = moving
    ? 'sweep'
    : requested === 'auto'
      ? !mark || Number(mark.sweptAt ?? 0) <= now - sweepEvery
        ? 'sweep'
        : 'steady'
      : requested;
  const pass: Pass = {
    options,
    now,
    pageSize: options.pageSize ?? 1_000,
    concurrency: options.concurrency ?? 50,
    repairs: { missing: 0, stuck: 0, catchup: 0, stale: 0, orphan: 0, run: 0, moved: 0 },
    shards,
    moving,
    jobs: 0,
    schedulers: 0,
    previousSuspects: await idSet(fireQueue.home, 'reconcile-suspects').read(),
    suspects: [],
  };
  // Right after a loss Redis holds only what the api registered since: the orphans can wait for
  // the next sweep, and the rebuild does not read back the 100,000 schedulers it just wrote.
  if (mode === 'sweep') await sweep(pass, requested !== 'auto' || mark !== undefined);
  else await steady(pass, mark ? Number(mark.passAt) : now - sweepEvery);
  await idSet(fireQueue.home, 'reconcile-suspects').replace(pass.suspects, SUSPECTS_TTL_S);
  pass.repairs.run = await requeueOpenRuns(options.db, fireQueue, shards, now, pass.concurrency);
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
  // The next steady pass reads what changed since this one began (less a margin, in `steady`).
  await marks.write({ passAt: now, ...(mode === 'sweep' ? { sweptAt: now } : {}) });

  const { repairs } = pass;
  for (const kind of REPAIR_KINDS) if (repairs[kind] > 0) options.onRepair?.(kind, repairs[kind]);
  const report: ReconcileReport = {
    now,
    mode,
    jobs: pass.jobs,
    schedulers: pass.schedulers,
    repairs,
    suspects: pass.suspects.length,
    durationMs: Date.now() - started,
  };
  const repaired = REPAIR_KINDS.some((kind) => repairs[kind] > 0);
  options.logger?.[repaired ? 'warn' : 'debug'](
    report,
    repaired ? 'reconcile repaired Redis from Postgres' : 'reconcile pass',
  );
  return report;
}

/** What one pass carries from step to step; every list in it is one page long at most, or small. */
interface Pass {
  options: ReconcileOptions;
  now: number;
  pageSize: number;
  concurrency: number;
  repairs: RepairCounts;
  /** Every fire queue Redis may hold jobs in: this shard count's first, then earlier counts'. */
  shards: FireShard[];
  /** Whether fire queues of an earlier shard count remain, whose jobs move to their shards. */
  moving: boolean;
  jobs: number;
  schedulers: number;
  /** Suspects of the previous pass: one still unaccounted for now is an orphan. */
  previousSuspects: Set<string>;
  suspects: string[];
}

/**
 * The rare pass: every active job (Postgres keyset pages) is judged, then every scheduler Redis
 * holds (ZSCAN pages of every fire queue) is checked against Postgres. One page at a time, never
 * every id at once. During a reshard the schedulers come first: one in a queue other than its
 * job's shard is removed there, and its job, then judged missing on its shard, is registered there
 * with the catch-up of what it missed, so no occurrence is queued on both.
 */
async function sweep(pass: Pass, orphans: boolean): Promise<void> {
  const { db } = pass.options;
  if (pass.moving) await scanSchedulers(pass);
  let afterId: string | undefined;
  for (;;) {
    const rows = await activeJobsPage(db, afterId, pass.pageSize);
    if (rows.length === 0) break;
    afterId = rows.at(-1)!.id;
    await repairJobs(pass, rows);
    if (rows.length < pass.pageSize) break;
  }
  if (orphans && !pass.moving) await scanSchedulers(pass);
}

/** Every scheduler of every fire queue, a ZSCAN page at a time: misplaced ones moved, the rest judged. */
async function scanSchedulers(pass: Pass): Promise<void> {
  const { fireQueue } = pass.options;
  for (const shard of pass.shards) {
    for await (const page of schedulerIdScan(shard, pass.pageSize)) {
      const ids = [...new Set(page)];
      pass.schedulers += ids.length;
      const misplaced = ids.filter((id) => {
        const parsed = parseSchedulerId(id);
        return parsed !== undefined && parsed !== null && fireQueue.shardOf(parsed.jobId) !== shard;
      });
      await pMap(
        misplaced,
        async (id) => {
          await shard.queue.removeJobScheduler(id);
          pass.repairs.moved++;
        },
        { concurrency: pass.concurrency },
      );
      const moved = new Set(misplaced);
      await judgeSchedulers(
        pass,
        ids.filter((id) => !moved.has(id)),
        () => shard,
      );
    }
  }
}

/**
 * The pass of every interval, costing what changed or fell overdue: the jobs the api changed since
 * the last pass began (less a margin for transactions that committed late), and the active jobs
 * whose next run is overdue — where a scheduler that stopped, or one Redis lost, shows.
 */
async function steady(pass: Pass, lastPassAt: number): Promise<void> {
  const { db, fireQueue } = pass.options;
  const judged = new Set<string>();
  const since = new Date(Math.min(lastPassAt, pass.now) - CHANGE_MARGIN_MS);
  let after: ChangedCursor | undefined;
  for (;;) {
    const { rows, next } = await changedJobsPage(db, since, after, pass.pageSize);
    if (rows.length === 0) break;
    after = next;
    const active = rows.filter((row) => row.state === 'active');
    for (const row of active) judged.add(row.id);
    await repairJobs(pass, active);
    // Their schedulers of this version and the one before, where present: judged like the sweep's.
    const candidates = rows.flatMap((row) =>
      row.version > 1
        ? [schedulerIdOf(row.id, row.version), schedulerIdOf(row.id, row.version - 1)]
        : [schedulerIdOf(row.id, row.version)],
    );
    const nexts = await nextsOnShards(fireQueue, candidates);
    const present = candidates.filter((_, i) => nexts[i] !== undefined);
    pass.schedulers += present.length;
    await judgeSchedulers(pass, present, homeOf(fireQueue));
    if (rows.length < pass.pageSize) break;
  }
  // Last pass's suspects, whatever made them: each is judged again (a few ids at most).
  const suspected = [...pass.previousSuspects];
  const stillThere = await nextsOnShards(fireQueue, suspected);
  await judgeSchedulers(
    pass,
    suspected.filter((id, i) => stillThere[i] !== undefined && !pass.suspects.includes(id)),
    homeOf(fireQueue),
  );
  const overdue = await overdueJobs(db, new Date(pass.now - OVERDUE_AFTER_MS), OVERDUE_MAX);
  await repairJobs(
    pass,
    overdue.filter((row) => !judged.has(row.id)),
  );
}

/** Judges a page of active jobs against Redis and applies what they need. */
async function repairJobs(pass: Pass, rows: JobRow[]): Promise<void> {
  if (rows.length === 0) return;
  const { fireQueue } = pass.options;
  const { now, repairs } = pass;
  pass.jobs += rows.length;
  const actions = await judgePage(rows, now, fireQueue);
  if (pass.moving) repairs.moved += await movePendingOneShots(actions, fireQueue, pass.shards);
  await pMap(
    actions,
    async (action) => {
      const queue = fireQueue.shardOf(action.job.id).queue;
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
    { concurrency: pass.concurrency },
  );
}

/**
 * Schedulers present in Redis, judged against Postgres as it stands now: one of the job's
 * current version while it is active is accounted for; one of an older version is stale; one of
 * a job that is deleted, paused, completed or unknown is an orphan — or only a suspect, when it
 * may belong to a transaction still in flight (removed by the next pass that still finds it).
 */
async function judgeSchedulers(pass: Pass, ids: string[], shardOf: (id: string) => FireShard): Promise<void> {
  const parsed = ids.flatMap((id) => {
    const scheduler = parseSchedulerId(id);
    return scheduler ? [{ id, ...scheduler }] : [];
  });
  if (parsed.length === 0) return;
  const states = await jobStatesOf(pass.options.db, [...new Set(parsed.map((s) => s.jobId))]);
  const removals: Array<{ id: string; kind: 'stale' | 'orphan' }> = [];
  for (const { id, jobId, version } of parsed) {
    const state = states.get(jobId);
    if (state && state.state === 'active' && state.version === version) continue;
    if (state && version < state.version) removals.push({ id, kind: 'stale' });
    else if (!state && uuidv7Time(jobId) < pass.now - CREATE_IN_FLIGHT_MAX_MS) removals.push({ id, kind: 'orphan' });
    else if (pass.previousSuspects.has(id)) removals.push({ id, kind: 'orphan' });
    else pass.suspects.push(id);
  }
  await pMap(
    removals,
    async ({ id, kind }) => {
      await shardOf(id).queue.removeJobScheduler(id);
      pass.repairs[kind]++;
    },
    { concurrency: pass.concurrency },
  );
}

/** Decides what each job of a page needs, reading the state of its BullMQ jobs in one round trip. */
async function judgePage(rows: JobRow[], now: number, fireQueue: FireQueue): Promise<Action[]> {
  const judged = rows.map((row) => {
    const job = jobFromRow(row);
    return { row, job, registration: cheapRegistrationOf(job, now, row.run_count) };
  });
  // Each scheduler's next occurrence as it is now, not as the pass began: a busy scheduler moves
  // on every second, and a stale answer would make a healthy one look stuck.
  const nextOf = (ids: string[]) => nextsOnShards(fireQueue, ids);
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

/** The shard a scheduler's job lives on (where the steady pass looks for it). */
function homeOf(fireQueue: FireQueue): (schedulerId: string) => FireShard {
  return (id) => fireQueue.shardOf(parseSchedulerId(id)?.jobId ?? '');
}

/** Each scheduler's next occurrence, read on its job's shard. */
function nextsOnShards(fireQueue: FireQueue, ids: string[]): Promise<Array<number | undefined>> {
  return perShard(
    fireQueue,
    ids,
    (id) => parseSchedulerId(id)?.jobId ?? '',
    (shard, some) => schedulerNextsOf(shard, some),
  );
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
  return { run: (now) => reconcile({ mode: 'auto', ...options, ...(now === undefined ? {} : { now }) }) };
}
