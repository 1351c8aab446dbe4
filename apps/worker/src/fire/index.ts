/**
 * One occurrence of the `fire` queue, from BullMQ job to recorded outcome, in one pipeline for
 * scheduled runs, runs now and replays alike:
 *   1. decide (decide.ts): load the job (and its service's signing secrets) from Postgres, the
 *      source of truth, and judge the occurrence by core's rules (`judgeOccurrence`) — paused,
 *      superseded, outside the window or maxRuns, excluded by a calendar, skipped on request,
 *      late (misfire), overlapping, or still inside its jitter — recording its run, once, under
 *      the job's row lock; a run now or a replay was recorded by the api and is looked up;
 *   2. check the slots the job's timer skipped before it (skipped-slots.ts), once the run is in;
 *   3. deliver: start an attempt, send the signed callback (../deliver.ts), judge the result;
 *   4. record (record.ts): the outcome and the job's next run; for a retry, hand BullMQ the delay
 *      and let it run this same job again. A decision that delivers nothing is settled there too.
 */
import type { Job as BullJob } from 'bullmq';
import { startAttempt } from '@tickwork/db';
import type { FireJobData } from '@tickwork/queue';
import { deliver } from '../deliver.ts';
import { decide } from './decide.ts';
import { recordDelivery, settle } from './record.ts';
import { secretsOf } from './secrets.ts';
import { recordSkippedSlots } from './skipped-slots.ts';
import type { FireContext, FireResult } from './types.ts';

export {
  RetryLaterError,
  tickworkBackoff,
  type Decision,
  type FireContext,
  type FireResult,
  type RetriedAttempt,
} from './types.ts';

export async function fireOccurrence(
  ctx: FireContext,
  bullJob: BullJob<FireJobData>,
  token?: string,
): Promise<FireResult> {
  const decision = await decide(ctx, bullJob, token);
  if ((decision.kind === 'deliver' || decision.kind === 'skipped') && decision.slots)
    await recordSkippedSlots(ctx, decision.slots);
  if (decision.kind !== 'deliver') return settle(ctx, bullJob, decision, token);

  const { run, job, occurrence } = decision;
  const attempt = decision.started ?? (await startAttempt(ctx.db, run.id, ctx.workerId))?.attempts;
  if (attempt === undefined) return { outcome: 'already-ended', runId: run.id };
  const log = ctx.logger.child({ jobId: job.id, runId: run.id, attempt });
  if (decision.schedule?.catchUp && attempt === 1)
    log.info({ scheduledFor: occurrence.scheduledFor }, 'late occurrence delivered as the catch-up');
  const deliveryStartedAt = Date.now();
  const outcome = await deliver(
    {
      runId: run.id,
      jobId: job.id,
      scheduledFor: occurrence.scheduledFor,
      attempt,
      trigger: occurrence.trigger,
      target: job.target,
      signingSecrets: secretsOf(decision.found, ctx.secretKeys, Date.now()),
    },
    ctx.policy,
    ctx.dispatchers,
    ctx.signal,
  );
  return recordDelivery(ctx, decision, { attempt, deliveryStartedAt, outcome, log });
}
