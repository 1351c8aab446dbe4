/**
 * The BullMQ side of the contract, shared by the api (producer) and the worker (consumer):
 * queue names, the payload of each, and the ids that tie a BullMQ job to a Tickwork occurrence.
 * Payloads hold ids only; the job's definition lives in Postgres (Bull Board shows job data).
 * Every BullMQ id Tickwork builds or reads is made here; the Redis keys behind them are in
 * `layout.ts`. Pure: nothing here talks to Redis.
 */
import {
  ScheduleComputeError,
  nextCronAfter,
  nextRunOf,
  normalizedScheduleOf,
  reportScheduleError,
  windowOf,
  type Job,
  type RunTrigger,
} from '@tickwork/core';

export const FIRE_QUEUE = 'fire';
export const MAINTENANCE_QUEUE = 'maintenance';

/** The data of every occurrence in the `fire` queue. */
export interface FireJobData {
  jobId: string;
  version: number;
  /** Set for `manual` and `replay` occurrences, whose run the api has already recorded. */
  runId?: string;
}

export const schedulerIdOf = (jobId: string, version: number) => `job:${jobId}:v${version}`;
/**
 * The id BullMQ 6.7 gives a scheduler's occurrence due at `at` (epoch ms): BullMQ makes it, we
 * only predict it (`layout.test.ts` checks the prediction against BullMQ).
 */
export const schedulerOccurrenceIdOf = (schedulerId: string, at: number) => `repeat:${schedulerId}:${at}`;
export const onceJobIdOf = (jobId: string, version: number) => `once:${jobId}:v${version}`;
export const manualJobIdOf = (jobId: string, runId: string) => `manual:${jobId}:${runId}`;
/**
 * BullMQ 6 refuses a custom job id with a `:` unless it has exactly three parts (its repeatable-job
 * compatibility rule), so a replay names its job too: `replay:<jobId>:<runId>` (the new run's id).
 */
export const replayJobIdOf = (jobId: string, runId: string) => `replay:${jobId}:${runId}`;
/**
 * A scheduled occurrence the reconciler re-enqueues after its timer was lost. BullMQ allows a
 * custom id of three `:`-separated parts only, so the instant rides in the last one.
 */
export const catchUpJobIdOf = (jobId: string, version: number, scheduledFor: number) =>
  `catchup:${jobId}:v${version}-${scheduledFor}`;

const SCHEDULER_ID = /^job:([0-9a-f-]{36}):v(\d+)$/;

export function parseSchedulerId(id: string): { jobId: string; version: number } | undefined {
  const match = SCHEDULER_ID.exec(id);
  return match ? { jobId: match[1]!, version: Number(match[2]) } : undefined;
}

/** How a job is registered in BullMQ, computed from its definition alone. */
export type Registration =
  | {
      kind: 'scheduler';
      schedulerId: string;
      repeat:
        | { pattern: string; tz: string; startDate?: number; endDate?: number }
        | { every: number; startDate: number; endDate?: number };
    }
  | { kind: 'delayed'; bullJobId: string; runAt: number }
  | { kind: 'none' };

/**
 * What to register for a job as it stands at `now`: nothing when it is not active or will not fire
 * again, a delayed BullMQ job for a one-shot, else a job scheduler. An interval's phase is handed
 * to BullMQ as `startDate` (the job's own next occurrence), so re-registering never moves it.
 */
export function registrationOf(job: Job, now: number, runCount = 0): Registration {
  const schedule = normalizedScheduleOf(job);
  // An active cron job with no end and no run limit always fires again (a cron that never fires
  // is refused when written): skip computing when, which is the costly part of re-registering
  // many jobs at once.
  const unbounded = job.state === 'active' && job.endAt === null && job.maxRuns === null;
  if (schedule.kind === 'cron' && unbounded) return cronRegistrationOf(job, schedule);
  let next: number | null;
  try {
    next = nextRunOf(job, now, runCount);
  } catch (error) {
    // Registered all the same: BullMQ's repeat strategy reports the error and the reconciler retries.
    if (schedule.kind === 'cron' && error instanceof ScheduleComputeError) return cronRegistrationOf(job, schedule);
    throw error;
  }
  if (next === null) return { kind: 'none' };
  switch (schedule.kind) {
    case 'at':
      return { kind: 'delayed', bullJobId: onceJobIdOf(job.id, job.version), runAt: next };
    case 'every':
      return {
        kind: 'scheduler',
        schedulerId: schedulerIdOf(job.id, job.version),
        repeat: { every: schedule.everyMs, startDate: next, ...(job.endAt === null ? {} : { endDate: job.endAt }) },
      };
    case 'cron':
      return cronRegistrationOf(job, schedule);
  }
}

function cronRegistrationOf(job: Job, schedule: { cron: string; timezone: string }): Registration {
  const window = windowOf(job);
  return {
    kind: 'scheduler',
    schedulerId: schedulerIdOf(job.id, job.version),
    repeat: {
      pattern: schedule.cron,
      tz: schedule.timezone,
      ...(window.startAt === undefined ? {} : { startDate: window.startAt }),
      ...(job.endAt === null ? {} : { endDate: job.endAt }),
    },
  };
}

/**
 * BullMQ's `repeatStrategy` for cron schedulers, so BullMQ fires exactly the instants the API
 * previews (the same time maths, DST rules included). BullMQ calls it with the last fire time.
 * Undefined is a real end only (past `endDate`, no later instant). An instant that cannot be
 * computed is reported to `onScheduleError` listeners (the worker counts and logs it) and also
 * answered with undefined, which BullMQ reads as "no next occurrence for now": it keeps the
 * scheduler, and the reconciler registers the job again on each pass until the instant computes.
 */
export function cronRepeatStrategy(
  millis: number,
  opts: { pattern?: string; tz?: string; startDate?: Date | string | number; endDate?: Date | string | number },
): number | undefined {
  if (!opts.pattern) return undefined;
  const startDate = opts.startDate === undefined ? undefined : new Date(opts.startDate).getTime();
  const after = startDate !== undefined && startDate - 1 > millis ? startDate - 1 : millis;
  let next: number | undefined;
  try {
    next = nextCronAfter(opts.pattern, opts.tz ?? 'UTC', after);
  } catch (error) {
    // Thrown into BullMQ, it would also stop the occurrence being taken from running.
    if (!(error instanceof ScheduleComputeError)) throw error;
    reportScheduleError(error);
    return undefined;
  }
  if (next === undefined) return undefined;
  const endDate = opts.endDate === undefined ? undefined : new Date(opts.endDate).getTime();
  return endDate !== undefined && next > endDate ? undefined : next;
}

/** Which occurrence a BullMQ job of the `fire` queue stands for. */
export interface Occurrence {
  trigger: RunTrigger;
  /** The instant the schedule named (for manual and replay runs, the run's own). */
  scheduledFor: number;
}

/**
 * Reads the occurrence from a BullMQ job id: `repeat:job:<id>:v<n>:<ms>` carries its instant;
 * a one-shot's instant is its `at`, given by the caller from the job definition.
 */
export function occurrenceOf(bullJobId: string, fallbackScheduledFor: number): Occurrence {
  if (bullJobId.startsWith('repeat:')) {
    const ms = Number(bullJobId.slice(bullJobId.lastIndexOf(':') + 1));
    return { trigger: 'schedule', scheduledFor: Number.isFinite(ms) ? ms : fallbackScheduledFor };
  }
  if (bullJobId.startsWith('catchup:')) {
    const ms = Number(bullJobId.slice(bullJobId.lastIndexOf('-') + 1));
    return { trigger: 'schedule', scheduledFor: Number.isFinite(ms) ? ms : fallbackScheduledFor };
  }
  if (bullJobId.startsWith('manual:')) return { trigger: 'manual', scheduledFor: fallbackScheduledFor };
  if (bullJobId.startsWith('replay:')) return { trigger: 'replay', scheduledFor: fallbackScheduledFor };
  return { trigger: 'schedule', scheduledFor: fallbackScheduledFor };
}
