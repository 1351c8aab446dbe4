/**
 * The per-occurrence policies, as pure decisions: whether a scheduled occurrence may fire at all
 * (window, maxRuns), how late it is (misfire), and which missed occurrence a re-registration may
 * catch up. The worker and the reconciler hand in what they read from Postgres and the clock.
 */
import { latestMissedOccurrence } from './catch-up.ts';
import { stableJitter } from './delivery.ts';
import { normalizedScheduleOf, windowOf, type Job } from './job.ts';
import { ScheduleComputeError, nextOccurrence } from './schedule.ts';

/** The key a scheduled occurrence's jitter is derived from: the same on every retry and every worker. */
export const jitterKeyOf = (jobId: string, scheduledFor: number) => `${jobId}:${scheduledFor}`;

/** When a scheduled occurrence should start: its instant plus the job's stable jitter. */
export function dueAtOf(job: Pick<Job, 'id' | 'jitterMs'>, scheduledFor: number): number {
  return scheduledFor + stableJitter(jitterKeyOf(job.id, scheduledFor), job.jitterMs);
}

/**
 * Whether an occurrence lies outside the job's window (`startAt`/`endAt`) or beyond `maxRuns`.
 * `runCount` counts the scheduled runs recorded before this one.
 */
export function outsideLimits(
  job: Pick<Job, 'startAt' | 'endAt' | 'maxRuns'>,
  scheduledFor: number,
  runCount: number,
): 'before_start' | 'after_end' | 'max_runs' | undefined {
  if (job.startAt !== null && scheduledFor < job.startAt) return 'before_start';
  if (job.endAt !== null && scheduledFor > job.endAt) return 'after_end';
  if (job.maxRuns !== null && runCount >= job.maxRuns) return 'max_runs';
  return undefined;
}

export type MisfireVerdict =
  /** Started within the grace period: deliver. */
  | 'on_time'
  /** Late, and the policy is `fire_once`: deliver, as the job's one catch-up. */
  | 'catch_up'
  /** Late, and the policy is `skip` (or the job already caught up): record `skipped`, reason `missed`. */
  | 'missed';

/**
 * Judges a scheduled occurrence that starts at `now`. It is late when it starts more than
 * `graceMs` after it was due (its instant plus jitter). A late occurrence is delivered once under
 * `fire_once` — unless the job has already moved past it (`caughtUp`: a run of the job was
 * recorded after this occurrence was already late, or for a later instant), which keeps a job to
 * one catch-up however many stale occurrences an outage leaves behind.
 */
export function misfireVerdict(
  job: Pick<Job, 'id' | 'jitterMs' | 'misfire'>,
  scheduledFor: number,
  now: number,
  caughtUp: boolean,
): MisfireVerdict {
  const lateness = now - dueAtOf(job, scheduledFor);
  if (lateness <= job.misfire.graceMs) return 'on_time';
  if (job.misfire.policy === 'skip' || caughtUp) return 'missed';
  return 'catch_up';
}

/**
 * The instant after which a run of the job means "this occurrence was already handled or
 * overtaken": the occurrence's due time plus the grace period. The worker asks Postgres whether a
 * run of the job was recorded after it (or for a later instant) to fill in `caughtUp`.
 */
export function lateSinceOf(job: Pick<Job, 'id' | 'jitterMs' | 'misfire'>, scheduledFor: number): number {
  return dueAtOf(job, scheduledFor) + job.misfire.graceMs;
}

/**
 * For a re-registration that may have lost occurrences (the reconciler after Redis lost its data;
 * resume is not one: a paused job owes nothing): the one occurrence to add now, if any. That is the
 * latest instant the job should have fired in `(lastScheduledFor, now]`: still within its grace
 * period under either policy, or later under `fire_once` only. `lastScheduledFor` is the latest
 * scheduled run recorded (or the job's creation when none). The worker judges it again when it
 * starts (`misfireVerdict`), so adding it twice still delivers it once.
 */
export function catchUpOf(job: Job, lastScheduledFor: number, now: number, runCount = 0): number | undefined {
  if (job.state !== 'active') return undefined;
  const latest = unlessUncomputable(() => latestMissedOccurrence(job, lastScheduledFor + 1, now));
  if (latest === undefined) return undefined;
  if (outsideLimits(job, latest, runCount)) return undefined;
  const late = now > lateSinceOf(job, latest);
  return late && job.misfire.policy === 'skip' ? undefined : latest;
}

/**
 * For the extras around a schedule (a catch-up, the slots a timer skipped): a schedule whose
 * instants cannot be computed has none. Its registration reports the error and keeps retrying
 * (`cronRepeatStrategy`), so skipping the extra hides nothing.
 */
function unlessUncomputable<T>(work: () => T): T | undefined {
  try {
    return work();
  } catch (error) {
    if (error instanceof ScheduleComputeError) return undefined;
    throw error;
  }
}

/** The most slots {@link slotsBetween} fills in at once; a longer gap is left as it is. */
export const MAX_FILLED_SLOTS = 1_000;

/**
 * The job's occurrences strictly between two of its instants: the slots a timer skipped when it
 * fell behind. Undefined when there are more than `max` (a long outage is not written out slot by
 * slot) or when they cannot be computed.
 */
export function slotsBetween(
  job: Pick<Job, 'schedule' | 'startAt' | 'endAt' | 'createdAt'>,
  afterMs: number,
  beforeMs: number,
  max = MAX_FILLED_SLOTS,
): number[] | undefined {
  const schedule = normalizedScheduleOf(job);
  const window = windowOf(job);
  return unlessUncomputable(() => {
    const slots: number[] = [];
    for (let cursor = afterMs; ; ) {
      const next = nextOccurrence(schedule, window, cursor);
      if (next === undefined || next >= beforeMs) return slots;
      if (slots.length >= max) return undefined;
      slots.push(next);
      cursor = next;
    }
  });
}

/** What the fire path knows of a scheduled occurrence when it judges it. Times are epoch ms. */
export interface OccurrenceFacts {
  job: Pick<Job, 'id' | 'state' | 'version' | 'overlap' | 'startAt' | 'endAt' | 'maxRuns' | 'jitterMs' | 'misfire'>;
  /** The job's `skipUntil` (a skip asked for): occurrences before it are skipped; null for none. */
  skipUntil: number | null;
  /** The scheduled runs recorded before this one (what `maxRuns` limits). */
  runCount: number;
  serviceDisabled: boolean;
  /** The job version the occurrence was registered under (its scheduler's). */
  version: number;
  scheduledFor: number;
  now: number;
  /** Whether an occurrence taken before its jittered start goes back to wait (a first attempt only). */
  mayWait: boolean;
  /** Whether one of the job's calendars excludes the occurrence's day. */
  excluded: boolean;
  /** Whether the job has moved past this late occurrence (see `misfireVerdict`); asked for when needed. */
  caughtUp?: boolean | undefined;
  /** Whether another run of the job is in flight (for `overlap: skip`); asked for when needed. */
  runInFlight?: boolean | undefined;
}

/** The questions {@link judgeOccurrence} may ask: each one a query, so asked only when it decides. */
export type OccurrenceQuestion = 'caughtUp' | 'runInFlight';

export type OccurrenceVerdict =
  | { kind: 'disabled' }
  /** Taken before its jittered start: it waits until `dueAt`; nothing is recorded. */
  | { kind: 'wait'; dueAt: number }
  /** Recorded as a run `skipped` for `reason`. */
  | { kind: 'skip'; reason: 'paused' | 'superseded' | 'excluded' | 'requested' | 'missed' | 'overlap' }
  /** Not recorded at all: the job has ended, or the occurrence lies outside its window or maxRuns. */
  | { kind: 'drop'; reason: 'completed' | 'before_start' | 'after_end' | 'max_runs' }
  /** Recorded and delivered; `catchUp` when it is late and the job's one catch-up (`fire_once`). */
  | { kind: 'deliver'; catchUp: boolean }
  /** The verdict depends on a fact not yet in `facts`: answer it and judge again. */
  | { kind: 'ask'; question: OccurrenceQuestion };

/**
 * The rules of a scheduled occurrence, in the order they apply: the service is enabled; it waits
 * out its jitter; the job is not paused and still at the occurrence's version; not completed;
 * inside its window and under `maxRuns`; not on a day a calendar excludes; not skipped on
 * request; not too late (misfire); not overlapping a run in flight (`overlap: skip`). The two
 * facts that cost a query are asked for (`ask`) only when the verdict turns on them.
 * `lockAndRecordOnTime` (packages/db) states the same rules in SQL for its common case; a
 * property test holds the two to the same verdict.
 */
export function judgeOccurrence(facts: OccurrenceFacts): OccurrenceVerdict {
  const { job, scheduledFor, now } = facts;
  if (facts.serviceDisabled) return { kind: 'disabled' };
  // Jitter delays the start, never the occurrence's instant (`tickwork-scheduled-for`).
  const dueAt = dueAtOf(job, scheduledFor);
  if (facts.mayWait && now < dueAt) return { kind: 'wait', dueAt };
  if (job.state === 'paused') return { kind: 'skip', reason: 'paused' };
  if (job.version !== facts.version) return { kind: 'skip', reason: 'superseded' };
  if (job.state === 'completed') return { kind: 'drop', reason: 'completed' };
  const limit = outsideLimits(job, scheduledFor, facts.runCount);
  if (limit) return { kind: 'drop', reason: limit };
  // Before misfire: an excluded occurrence is `excluded` however late it comes.
  if (facts.excluded) return { kind: 'skip', reason: 'excluded' };
  if (facts.skipUntil !== null && scheduledFor < facts.skipUntil) return { kind: 'skip', reason: 'requested' };
  const misfire = misfireVerdict(job, scheduledFor, now, facts.caughtUp === true);
  if (misfire === 'catch_up' && facts.caughtUp === undefined) return { kind: 'ask', question: 'caughtUp' };
  if (misfire === 'missed') return { kind: 'skip', reason: 'missed' };
  if (job.overlap === 'skip') {
    if (facts.runInFlight === undefined) return { kind: 'ask', question: 'runInFlight' };
    if (facts.runInFlight) return { kind: 'skip', reason: 'overlap' };
  }
  return { kind: 'deliver', catchUp: misfire === 'catch_up' };
}
