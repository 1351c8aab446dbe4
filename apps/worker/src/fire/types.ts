/**
 * The fire path's shared shapes: what it is handed (`FireContext`), the one `Decision` every
 * occurrence (scheduled, run now, replay) comes to, and what became of it (`FireResult`).
 */
import type { Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { Exclusion, Job, RunStatus, RunTrigger, SecretKeys, SkipReason } from '@tickwork/core';
import type { Database, JobForFire, Neighbours, RunRow } from '@tickwork/db';
import type { Occurrence } from '@tickwork/queue';
import type { OutboundPolicy } from '../outbound-guard.ts';

export interface FireContext {
  db: Kysely<Database>;
  logger: Logger;
  workerId: string;
  /** Open the signing secrets and the target headers (SECRET_KEY, and SECRET_KEY_PREVIOUS during a rotation). */
  secretKeys: SecretKeys;
  policy: OutboundPolicy;
  dispatchers: { guarded: Dispatcher; allowListed: Dispatcher };
  /** Aborts in-flight callbacks when the grace period of a shutdown runs out. */
  signal?: AbortSignal;
  /** The `fire` queue, to remove the scheduler of a job that has completed (endAt, maxRuns). */
  queue?: Queue;
  /**
   * Every fire queue an occurrence may wait in (with FIRE_QUEUE_SHARDS changed: those of the
   * earlier count too), for the skipped-slot check. @defaultValue `[queue]`
   */
  queues?: () => Promise<Queue[]>;
}

/** The attempt a retry follows, for observers of the worker's `failed` event (metrics, logs). */
export interface RetriedAttempt {
  runId: string;
  trigger: RunTrigger;
  attempt: number;
  /** The instant the schedule named, epoch ms. */
  scheduledFor: number;
  /** When the callback was sent, epoch ms. */
  deliveryStartedAt: number;
  durationMs: number;
}

/** Thrown to make BullMQ run the same job again after `delayMs` (see the `tickwork` backoff). */
export class RetryLaterError extends Error {
  readonly delayMs: number;
  readonly attempted: RetriedAttempt | undefined;
  constructor(delayMs: number, message: string, attempted?: RetriedAttempt) {
    super(message);
    // A callback that failed is not a fault in our code: BullMQ records no stack trace for an
    // error without one, so Bull Board shows the attempt as what it was ("HTTP 500", "ECONNREFUSED…").
    delete (this as { stack?: string }).stack;
    this.name = 'RetryLaterError';
    this.delayMs = delayMs;
    this.attempted = attempted;
  }
}

/** BullMQ's custom backoff: the delay the worker computed from the job's retry policy. */
export function tickworkBackoff(_attemptsMade: number, _type: string | undefined, error?: Error): number {
  return error instanceof RetryLaterError ? error.delayMs : 1_000;
}

/**
 * What became of one processing of an occurrence. The worker's events carry it (BullMQ's
 * `completed` return value), so metrics and logs observe outcomes without living in here.
 */
export type FireResult =
  | { outcome: 'gone' }
  | { outcome: 'skipped'; reason: string; runId?: string; trigger?: RunTrigger; scheduledFor?: number }
  /** Not recorded: outside the job's window, beyond maxRuns, or the job is completed. */
  | { outcome: 'dropped'; reason: string; scheduledFor: number }
  | { outcome: 'already-ended'; runId: string }
  | {
      outcome: 'delivered';
      runId: string;
      status: RunStatus;
      trigger: RunTrigger;
      attempt: number;
      /** The instant the schedule named, epoch ms. */
      scheduledFor: number;
      /** When the callback was sent, epoch ms (fire lag = this − scheduledFor). */
      deliveryStartedAt: number;
      durationMs: number;
      /** A late occurrence delivered as the job's one catch-up (misfire `fire_once`). */
      catchUp?: boolean;
    };

/**
 * The slots a job's timer may have skipped before a scheduled occurrence: checked once the
 * occurrence's run is recorded (see skipped-slots.ts).
 */
export interface SlotCheck {
  job: Job;
  version: number;
  scheduledFor: number;
  /**
   * The version's recorded scheduled runs just before and after the occurrence, read while the
   * decision held the job's lock: every run of the job recorded before the lock was granted is
   * among what they were chosen from.
   */
  neighbours: Neighbours;
  /**
   * A catch-up (its BullMQ job id is `catchUpJobIdOf`): it may be decided after later occurrences
   * of its version, so the slots up to the next recorded one are checked too.
   */
  catchUp?: boolean;
  /** The job's calendars: a skipped slot on a day they exclude is recorded `excluded`, not `missed`. */
  exclusion?: Exclusion | undefined;
}

/** What a scheduled occurrence's delivery moves on: the job's next run, or its end. */
export interface ScheduleProgress {
  /** The job's scheduled runs, this one included. */
  runCount: number;
  /** A late occurrence delivered as the job's one catch-up (misfire `fire_once`). */
  catchUp: boolean;
  /** The job's calendars, when it lists any: `nextRunAt` leaves out the days they exclude. */
  exclusion?: Exclusion | undefined;
}

/**
 * What one processing of an occurrence comes to, for scheduled runs, runs now and replays alike;
 * the pipeline (index.ts) acts on it: deliver, or settle without a callback.
 */
export type Decision =
  /** The job is not there (yet): a young occurrence waits for its create to commit, an old one is dropped. */
  | { kind: 'missing' }
  /** The run the api recorded (run now, replay) is not there any more. */
  | { kind: 'gone' }
  /** The service is disabled; a run the api recorded is failed, not left `running`. */
  | { kind: 'disabled'; requestedRun?: { id: string; jobId: string } }
  /** Jitter: the occurrence starts at `dueAt`; nothing was recorded. */
  | { kind: 'wait'; dueAt: number }
  /** Not recorded; `complete`: the job has nothing left to fire (after its window, maxRuns). */
  | { kind: 'dropped'; reason: string; complete: boolean; occurrence: Occurrence }
  | { kind: 'skipped'; reason: SkipReason; run: RunRow; occurrence: Occurrence; slots?: SlotCheck | undefined }
  | {
      kind: 'deliver';
      run: Pick<RunRow, 'id'>;
      job: Job;
      found: JobForFire;
      occurrence: Occurrence;
      /** A scheduled occurrence's: what its outcome moves on. Runs now and replays move nothing. */
      schedule?: ScheduleProgress | undefined;
      /** Set when the run was recorded with its first attempt started (attempt 1). */
      started?: number | undefined;
      slots?: SlotCheck | undefined;
    };
