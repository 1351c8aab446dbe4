/**
 * Record: what a decision or a delivery leaves in Postgres (and Redis), and the `FireResult`
 * the worker's events carry. A delivered attempt's outcome moves a scheduled job on (its next
 * run, or its end); a retry hands BullMQ the delay and lets it run this same job again.
 */
import { DelayedError, type Job as BullJob } from 'bullmq';
import type { Logger } from 'pino';
import { judgeAttempt, nextRunOf, ScheduleComputeError, type Job } from '@tickwork/core';
import { completeJob, recordOutcome, recordOutcomeGrouped } from '@tickwork/db';
import { removeRegistration, type FireJobData } from '@tickwork/queue';
import type { DeliveryOutcome } from '../deliver.ts';
import { RetryLaterError, type Decision, type FireContext, type FireResult, type ScheduleProgress } from './types.ts';

/** How long after its BullMQ job was made an occurrence may wait for its job's row to commit. */
const UNCOMMITTED_GRACE_MS = 10_000;

/** Takes a completed job's scheduler out of Redis; the reconciler removes it if this fails. */
async function retire(ctx: FireContext, jobId: string, version: number): Promise<void> {
  if (!ctx.queue) return;
  await removeRegistration(ctx.queue, jobId, version).catch((error: unknown) => {
    ctx.logger.warn({ err: error, jobId }, 'could not remove the scheduler of a completed job');
  });
}

/** Settles a decision that delivers nothing. */
export async function settle(
  ctx: FireContext,
  bullJob: BullJob<FireJobData>,
  decision: Exclude<Decision, { kind: 'deliver' }>,
  token: string | undefined,
): Promise<FireResult> {
  const { jobId, version } = bullJob.data;
  switch (decision.kind) {
    case 'missing':
      // An occurrence can reach a worker before the create that registered it has committed (a
      // one-shot due within milliseconds, a manual run): give a young one a moment to appear.
      if (Date.now() - bullJob.timestamp < UNCOMMITTED_GRACE_MS && bullJob.attemptsMade < 5) {
        throw new RetryLaterError(500, 'job not visible yet; its create may still be committing');
      }
      // Deleted (or never committed): nothing to deliver, nothing to record.
      ctx.logger.info({ jobId, bullJobId: bullJob.id }, 'job is gone; occurrence dropped');
      return { outcome: 'gone' };
    case 'gone':
      return { outcome: 'gone' };
    case 'disabled':
      // A run the api already recorded (run now, replay) must not stay `running` for ever.
      if (decision.requestedRun) {
        await recordOutcome(ctx.db, decision.requestedRun, {
          status: 'failed',
          httpStatus: null,
          durationMs: null,
          responseExcerpt: null,
          error: 'service disabled',
        });
      }
      return { outcome: 'skipped', reason: 'service disabled' };
    case 'wait':
      await bullJob.moveToDelayed(decision.dueAt, token);
      throw new DelayedError();
    case 'dropped':
      if (decision.complete) {
        await completeJob(ctx.db, jobId, version);
        await retire(ctx, jobId, version);
      }
      return { outcome: 'dropped', reason: decision.reason, scheduledFor: decision.occurrence.scheduledFor };
    case 'skipped':
      ctx.logger.info({ jobId, runId: decision.run.id, reason: decision.reason }, 'occurrence skipped');
      return {
        outcome: 'skipped',
        reason: decision.reason,
        runId: decision.run.id,
        trigger: decision.occurrence.trigger,
        scheduledFor: decision.occurrence.scheduledFor,
      };
  }
}

/** One attempt's delivery, as the pipeline made it. */
export interface Attempted {
  attempt: number;
  /** When the callback was sent, epoch ms. */
  deliveryStartedAt: number;
  outcome: DeliveryOutcome;
  log: Logger;
}

/**
 * A scheduled job's next occurrence after the one delivered: `next` decides whether it is done,
 * `shown` (without the days its calendars exclude) is the `nextRunAt` it shows. Undefined when it
 * cannot be computed: not an end, the job stays active with no nextRunAt, its scheduler registered.
 */
function nextRunAfter(
  job: Job,
  schedule: ScheduleProgress,
  scheduledFor: number,
  log: Logger,
): { next: number | null; shown: number | null } | undefined {
  try {
    const after = Math.max(Date.now(), scheduledFor);
    const next = nextRunOf(job, after, schedule.runCount);
    const shown =
      next === null || !schedule.exclusion ? next : nextRunOf(job, after, schedule.runCount, schedule.exclusion);
    return { next, shown };
  } catch (error) {
    if (!(error instanceof ScheduleComputeError)) throw error;
    log.error({ err: error, cron: error.cron, timezone: error.timezone }, 'could not compute the next occurrence');
    return undefined;
  }
}

/** Records a delivered attempt's outcome, and moves a scheduled job on. */
export async function recordDelivery(
  ctx: FireContext,
  decision: Extract<Decision, { kind: 'deliver' }>,
  attempted: Attempted,
): Promise<FireResult> {
  const { run, job, occurrence, schedule } = decision;
  const { attempt, outcome, log } = attempted;
  const verdict = judgeAttempt(outcome.result, attempt, job.retry, { now: Date.now() });
  const next = schedule ? nextRunAfter(job, schedule, occurrence.scheduledFor, log) : undefined;
  const complete = verdict.status !== 'retrying' && next?.next === null;
  const shown = next?.shown ?? null;
  await recordOutcomeGrouped(
    ctx.db,
    { id: run.id, jobId: job.id },
    {
      status: verdict.status,
      httpStatus: outcome.httpStatus,
      durationMs: outcome.durationMs,
      responseExcerpt: outcome.responseExcerpt,
      error: outcome.result.kind === 'refused' ? 'destination not allowed' : outcome.error,
    },
    schedule ? { version: job.version, nextRunAt: shown === null ? null : new Date(shown), complete } : undefined,
  );
  if (complete && !('at' in job.schedule)) await retire(ctx, job.id, job.version);
  log.info(
    { status: verdict.status, httpStatus: outcome.httpStatus, durationMs: outcome.durationMs },
    'callback attempted',
  );
  const shared = {
    runId: run.id,
    trigger: occurrence.trigger,
    attempt,
    scheduledFor: occurrence.scheduledFor,
    deliveryStartedAt: attempted.deliveryStartedAt,
    durationMs: outcome.durationMs,
  };
  if (verdict.status === 'retrying') {
    throw new RetryLaterError(verdict.retryInMs ?? 1_000, outcome.error ?? 'retrying', shared);
  }
  return {
    outcome: 'delivered',
    status: verdict.status,
    ...shared,
    ...(schedule?.catchUp ? { catchUp: true } : {}),
  };
}
