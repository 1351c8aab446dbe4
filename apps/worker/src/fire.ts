/**
 * One occurrence of the `fire` queue, from BullMQ job to recorded outcome:
 *   1. load the job (and its service's signing secrets) from Postgres, the source of truth;
 *   2. record the occurrence as a run, once: a redelivery finds the same row and run id;
 *   3. start an attempt, deliver the callback, judge the result;
 *   4. record the outcome; for a retry, hand BullMQ the delay and let it run this same job again.
 */
import type { Job as BullJob } from 'bullmq';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import {
  decryptSecret,
  judgeAttempt,
  nextRunOf,
  occurrenceOf,
  uuidv7,
  type FireJobData,
  type Job,
  type RunStatus,
  type RunTrigger,
} from '@tickwork/core';
import {
  findJobForFire,
  finishAttempt,
  jobFromRow,
  recordOccurrence,
  startOccurrence,
  type Database,
  type JobForFire,
} from '@tickwork/db';
import { deliver, type DeliveryOutcome } from './deliver.ts';
import type { OutboundPolicy } from './outbound-guard.ts';
import type { Dispatcher } from 'undici';

export interface FireContext {
  db: Kysely<Database>;
  logger: Logger;
  workerId: string;
  secretKey: string;
  policy: OutboundPolicy;
  dispatchers: { guarded: Dispatcher; allowListed: Dispatcher };
  /** Aborts in-flight callbacks when the grace period of a shutdown runs out. */
  signal?: AbortSignal;
}

/** Thrown to make BullMQ run the same job again after `delayMs` (see the `tickwork` backoff). */
export class RetryLaterError extends Error {
  readonly delayMs: number;
  constructor(delayMs: number, message: string) {
    super(message);
    this.name = 'RetryLaterError';
    this.delayMs = delayMs;
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
    };

function secretsOf(found: JobForFire, secretKey: string, now: number): string[] {
  const secrets = [decryptSecret(found.service.signingSecret, secretKey)];
  const previous = found.service.previousSigningSecret;
  const until = found.service.previousSecretExpiresAt;
  if (previous && until && until.getTime() > now) secrets.push(decryptSecret(previous, secretKey));
  return secrets;
}

/** The instant a BullMQ job stands for when its id does not carry one (one-shots). */
function fallbackInstant(bullJob: BullJob<FireJobData>, job: Job): number {
  if ('at' in job.schedule) return Date.parse(job.schedule.at);
  return bullJob.timestamp + (bullJob.opts.delay ?? 0);
}

export async function fireOccurrence(ctx: FireContext, bullJob: BullJob<FireJobData>): Promise<FireResult> {
  const { jobId, version } = bullJob.data;
  const found = await findJobForFire(ctx.db, jobId);
  if (!found) {
    // Deleted (or never committed): nothing to deliver, nothing to record.
    ctx.logger.info({ jobId, bullJobId: bullJob.id }, 'job is gone; occurrence dropped');
    return { outcome: 'gone' };
  }
  const job = jobFromRow(found.job);
  const occurrence = occurrenceOf(bullJob.id ?? '', fallbackInstant(bullJob, job));
  const scheduledFor = new Date(occurrence.scheduledFor);
  const base = { jobId, serviceId: job.serviceId, jobVersion: version, scheduledFor, trigger: occurrence.trigger };

  if (found.service.disabled || job.state === 'completed') {
    return { outcome: 'skipped', reason: 'job or service inactive' };
  }
  if (job.version !== version) {
    const { run } = await recordOccurrence(ctx.db, { ...base, id: uuidv7(), status: 'skipped', skipReason: 'superseded' });
    return { outcome: 'skipped', reason: 'superseded', runId: run.id, trigger: occurrence.trigger, scheduledFor: occurrence.scheduledFor };
  }
  if (job.state === 'paused' && occurrence.trigger === 'schedule') {
    const { run } = await recordOccurrence(ctx.db, { ...base, id: uuidv7(), status: 'skipped', skipReason: 'paused' });
    return { outcome: 'skipped', reason: 'paused', runId: run.id, trigger: occurrence.trigger, scheduledFor: occurrence.scheduledFor };
  }

  // One statement records the occurrence and starts its attempt (fire-path.ts: round trips are the cost).
  const started = await startOccurrence(ctx.db, { ...base, id: bullJob.data.runId ?? uuidv7() }, ctx.workerId);
  if (started.ended) return { outcome: 'already-ended', runId: started.run.id };
  const run = started.run;
  const attempt = run.attempts;
  const log = ctx.logger.child({ jobId, runId: run.id, attempt });

  const deliveryStartedAt = Date.now();
  const outcome: DeliveryOutcome = await deliver(
    {
      runId: run.id,
      jobId,
      scheduledFor: occurrence.scheduledFor,
      attempt,
      trigger: occurrence.trigger,
      target: job.target,
      signingSecrets: secretsOf(found, ctx.secretKey, Date.now()),
    },
    ctx.policy,
    ctx.dispatchers,
    ctx.signal,
  );
  const verdict = judgeAttempt(outcome.result, attempt, job.retry, { now: Date.now() });
  const ended = verdict.status !== 'retrying';
  const isOneShot = 'at' in job.schedule && occurrence.trigger === 'schedule';
  const nextRunAt = nextRunOf(job, Math.max(Date.now(), occurrence.scheduledFor), found.job.run_count);
  await finishAttempt(
    ctx.db,
    { id: run.id, jobId },
    {
      status: verdict.status,
      httpStatus: outcome.httpStatus,
      durationMs: outcome.durationMs,
      responseExcerpt: outcome.responseExcerpt,
      error: outcome.result.kind === 'refused' ? 'destination not allowed' : outcome.error,
    },
    occurrence.trigger === 'schedule'
      ? { nextRunAt: nextRunAt === null ? null : new Date(nextRunAt), complete: ended && isOneShot }
      : undefined,
  );
  log.info({ status: verdict.status, httpStatus: outcome.httpStatus, durationMs: outcome.durationMs }, 'callback attempted');
  if (verdict.status === 'retrying') {
    throw new RetryLaterError(verdict.retryInMs ?? 1_000, outcome.error ?? 'retrying');
  }
  return {
    outcome: 'delivered',
    runId: run.id,
    status: verdict.status,
    trigger: occurrence.trigger,
    attempt,
    scheduledFor: occurrence.scheduledFor,
    deliveryStartedAt,
    durationMs: outcome.durationMs,
  };
}

