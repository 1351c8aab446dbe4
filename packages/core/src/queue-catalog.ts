/**
 * The BullMQ side of the contract, shared by the api (producer) and the worker (consumer):
 * queue names, the payload of each, and the ids that tie a BullMQ job to a Tickwork occurrence.
 * Payloads hold ids only; the job's definition lives in Postgres (Bull Board shows job data).
 */
import { nextCronAfter } from './schedule.ts';
import { normalizedScheduleOf, windowOf, nextRunOf, type Job } from './job.ts';
import type { RunTrigger } from './schemas.ts';

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
export const onceJobIdOf = (jobId: string, version: number) => `once:${jobId}:v${version}`;
export const manualJobIdOf = (jobId: string, runId: string) => `manual:${jobId}:${runId}`;
/**
 * BullMQ 6 refuses a custom job id with a `:` unless it has exactly three parts (its repeatable-job
 * compatibility rule), so a replay names its job too: `replay:<jobId>:<runId>` (the new run's id).
 */
export const replayJobIdOf = (jobId: string, runId: string) => `replay:${jobId}:${runId}`;

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
  const next = nextRunOf(job, now, runCount);
  if (next === null) return { kind: 'none' };
  const schedule = normalizedScheduleOf(job);
  const endDate = job.endAt ?? undefined;
  switch (schedule.kind) {
    case 'at':
      return { kind: 'delayed', bullJobId: onceJobIdOf(job.id, job.version), runAt: next };
    case 'every':
      return {
        kind: 'scheduler',
        schedulerId: schedulerIdOf(job.id, job.version),
        repeat: { every: schedule.everyMs, startDate: next, ...(endDate === undefined ? {} : { endDate }) },
      };
    case 'cron': {
      const window = windowOf(job);
      return {
        kind: 'scheduler',
        schedulerId: schedulerIdOf(job.id, job.version),
        repeat: {
          pattern: schedule.cron,
          tz: schedule.timezone,
          ...(window.startAt === undefined ? {} : { startDate: window.startAt }),
          ...(endDate === undefined ? {} : { endDate }),
        },
      };
    }
  }
}

/**
 * BullMQ's `repeatStrategy` for cron schedulers, so BullMQ fires exactly the instants the API
 * previews (the same time maths, DST rules included). BullMQ calls it with the last fire time.
 */
export function cronRepeatStrategy(
  millis: number,
  opts: { pattern?: string; tz?: string; startDate?: Date | string | number; endDate?: Date | string | number },
): number | undefined {
  if (!opts.pattern) return undefined;
  const startDate = opts.startDate === undefined ? undefined : new Date(opts.startDate).getTime();
  const after = startDate !== undefined && startDate - 1 > millis ? startDate - 1 : millis;
  const next = nextCronAfter(opts.pattern, opts.tz ?? 'UTC', after);
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
  if (bullJobId.startsWith('manual:')) return { trigger: 'manual', scheduledFor: fallbackScheduledFor };
  if (bullJobId.startsWith('replay:')) return { trigger: 'replay', scheduledFor: fallbackScheduledFor };
  return { trigger: 'schedule', scheduledFor: fallbackScheduledFor };
}
