/**
 * One occurrence of the `fire` queue, from BullMQ job to recorded outcome:
 *   1. load the job (and its service's signing secrets) from Postgres, the source of truth;
 *   2. a scheduled occurrence waits out its jitter (back to BullMQ's delayed set, same id);
 *   3. decide it under the job's row lock — paused, superseded, outside the window or maxRuns,
 *      skipped on request, late (misfire), overlapping — and record it as a run, once: a redelivery finds the same
 *      row and run id; a manual run or replay was recorded by the api and is looked up;
 *   4. start an attempt, deliver the callback, judge the result;
 *   5. record the outcome; for a retry, hand BullMQ the delay and let it run this same job again.
 */
import { DelayedError, type Job as BullJob, type Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import {
  decryptSecret,
  dueAtOf,
  exclusionOf,
  jitterHash,
  jitterKeyOf,
  judgeAttempt,
  lateSinceOf,
  misfireVerdict,
  nextRunOf,
  outsideLimits,
  ScheduleComputeError,
  slotsBetween,
  uuidv7,
  uuidv7Floor,
  type Exclusion,
  type Job,
  type RunStatus,
  type RunTrigger,
  type SkipReason,
} from '@tickwork/core';
import {
  calendarSpecOf,
  completeJob,
  findCalendars,
  findJobForFire,
  findOccurrenceRun,
  findRunById,
  hasCaughtUp,
  hasRunInFlight,
  jobFromRow,
  lastScheduledBefore,
  lockAndRecordOnTime,
  lockJobForFireWithService,
  recordMissedSlots,
  recordOccurrence,
  recordOutcome,
  recordOutcomeGrouped,
  startAttempt,
  type Database,
  type JobForFire,
  type RunRow,
} from '@tickwork/db';
import {
  removeRegistration,
  occurrenceOf,
  catchUpJobIdOf,
  schedulerIdOf,
  schedulerOccurrenceIdOf,
  type FireJobData,
  type Occurrence,
} from '@tickwork/queue';
import { deliver, type DeliveryOutcome } from './deliver.ts';
import { isSkipRequested, moveOnAfterSkip } from './skip.ts';
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

/** How long after its BullMQ job was made an occurrence may wait for its job's row to commit. */
const UNCOMMITTED_GRACE_MS = 10_000;

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
 * Decrypted signing secrets by (key, service, stored value). Decrypting derives a key and runs
 * AES-GCM on every callback otherwise; a rotation stores a new value (and a fresh IV), so it is a
 * new entry and the old one is never read again. Bounded: the least recently used entry goes first.
 */
const secretCache = new LRUCache<string, string>({ max: 10_000 });

function decryptCached(serviceId: string, encrypted: string, secretKey: string): string {
  const key = `${secretKey}\u0000${serviceId}\u0000${encrypted}`;
  let secret = secretCache.get(key);
  if (secret === undefined) {
    secret = decryptSecret(encrypted, secretKey);
    secretCache.set(key, secret);
  }
  return secret;
}

function secretsOf(found: JobForFire, secretKey: string, now: number): string[] {
  const serviceId = found.job.service_id;
  const secrets = [decryptCached(serviceId, found.service.signingSecret, secretKey)];
  const previous = found.service.previousSigningSecret;
  const until = found.service.previousSecretExpiresAt;
  if (previous && until && until.getTime() > now) secrets.push(decryptCached(serviceId, previous, secretKey));
  return secrets;
}

/** The instant a BullMQ job stands for when its id does not carry one (one-shots). */
function fallbackInstant(bullJob: BullJob<FireJobData>, job: Job): number {
  if ('at' in job.schedule) return Date.parse(job.schedule.at);
  return bullJob.timestamp + (bullJob.opts.delay ?? 0);
}

/** What the decision under the job's lock came to for a scheduled occurrence. */
type Decision =
  | { kind: 'missing' }
  | { kind: 'disabled' }
  /** Jitter: the occurrence starts at `dueAt`; nothing was recorded. */
  | { kind: 'wait'; dueAt: number }
  | { kind: 'dropped'; reason: string; complete: boolean; occurrence: Occurrence }
  | { kind: 'skipped'; reason: SkipReason; run: RunRow; occurrence: Occurrence }
  | {
      kind: 'deliver';
      run: Pick<RunRow, 'id'>;
      job: Job;
      runCount: number;
      catchUp: boolean;
      occurrence: Occurrence;
      found: JobForFire;
      /** Set when the run was recorded with its first attempt started (attempt 1). */
      started?: number;
      /** The job's calendars, when it lists any: `nextRunAt` leaves out the days they exclude. */
      exclusion?: Exclusion;
    };

/**
 * BullMQ skips a scheduler's slots when it falls behind (workers down, a worker killed as it took
 * an occurrence, an overloaded box): it makes the next occurrence only when a worker takes the
 * current one, aligned to the clock. No worker ever sees those slots; record them as missed, so
 * every occurrence keeps its one row in the ledger. A slot whose BullMQ job still exists (awaiting
 * stalled recovery, a reconciler catch-up) is not skipped: it will be decided itself.
 */
async function recordSkippedSlots(
  ctx: FireContext,
  trx: Kysely<Database>,
  job: Job,
  version: number,
  scheduledFor: number,
  /** The version's previous scheduled instant when the caller read it already (null: none). */
  known?: Date | null,
  /** The job's calendars: a skipped slot on a day they exclude is recorded `excluded`, not `missed`. */
  exclusion?: Exclusion,
): Promise<void> {
  const queue = ctx.queue;
  if (!queue) return;
  const previous =
    known !== undefined ? known : await lastScheduledBefore(trx, job.id, version, new Date(scheduledFor));
  if (!previous) return;
  const gap = slotsBetween(job, previous.getTime(), scheduledFor);
  if (gap === undefined) {
    ctx.logger.warn({ jobId: job.id, since: previous }, 'skipped slots not recorded: too many, or not computable');
    return;
  }
  if (gap.length === 0) return;
  const queues = ctx.queues ? await ctx.queues() : [queue];
  const pending = await Promise.all(
    gap.map(async (slot) => {
      const ids = [
        schedulerOccurrenceIdOf(schedulerIdOf(job.id, version), slot),
        catchUpJobIdOf(job.id, version, slot),
      ];
      const found = await Promise.all(queues.flatMap((each) => ids.map((id) => each.getJob(id))));
      return found.some((j) => j !== undefined && j !== null);
    }),
  );
  const skipped = gap.filter((_, i) => !pending[i]);
  const base = { jobId: job.id, serviceId: job.serviceId, jobVersion: version };
  const excluded = exclusion && !exclusion.empty ? skipped.filter((slot) => exclusion.excludes(slot)) : [];
  const missed = excluded.length === 0 ? skipped : skipped.filter((slot) => !excluded.includes(slot));
  const recorded =
    (await recordMissedSlots(trx, base, missed, uuidv7)) +
    (await recordMissedSlots(trx, base, excluded, uuidv7, 'excluded'));
  if (recorded > 0) ctx.logger.info({ jobId: job.id, recorded }, 'slots the timer skipped recorded as missed');
}

/**
 * Decides a scheduled occurrence and records its run. The job's row is locked while it is
 * decided, so the checks and the insert that changes their answers are atomic; the locked read
 * is also the job's only read (with its service's secrets), so the job is read once per
 * occurrence. Two round trips in the common case: this statement and, later, the outcome.
 */
async function decideScheduled(
  ctx: FireContext,
  bullJob: BullJob<FireJobData>,
  token: string | undefined,
): Promise<Decision> {
  const { jobId, version } = bullJob.data;
  const bullJobId = bullJob.id ?? '';
  const mayWait = token !== undefined && bullJob.attemptsMade === 0;
  // The instant is in the id of every occurrence but a one-shot's (which is the job's `at`).
  if (!bullJobId.startsWith('repeat:') && !bullJobId.startsWith('catchup:'))
    return decideUnderLock(ctx, bullJob, mayWait);
  // The common case in one statement of its own: lock, check, record the run with its first
  // attempt started, and read the previous instant for the skipped-slot check. When a check
  // fails nothing is written: the occurrence is decided in a transaction under the job's lock.
  const now = Date.now();
  const scheduledFor = occurrenceOf(bullJobId, 0).scheduledFor;
  const onTime = await lockAndRecordOnTime(ctx.db, {
    runId: uuidv7(),
    jobId,
    version,
    scheduledFor,
    workerId: ctx.workerId,
    now,
    jitterHash: jitterHash(jitterKeyOf(jobId, scheduledFor)),
    mayWait,
  });
  if (!onTime) return { kind: 'missing' };
  const { found } = onTime;
  const job = jobFromRow(found.job);
  const occurrence: Occurrence = { trigger: 'schedule', scheduledFor };
  if (onTime.runId !== undefined) {
    // After the run's commit, not with it: a crash in between leaves the BullMQ job to be taken
    // over, and the takeover finds the run and records the slots (see `decideUnderLock`).
    await recordSkippedSlots(ctx, ctx.db, job, version, scheduledFor, onTime.previous ?? null);
    return {
      kind: 'deliver',
      run: { id: onTime.runId },
      job,
      runCount: found.job.run_count + 1,
      catchUp: false,
      occurrence,
      found,
      started: 1,
    };
  }
  // Neither needs the lock, nor writes: decided from the row the statement read.
  if (found.service.disabled) return { kind: 'disabled' };
  const dueAt = dueAtOf(job, scheduledFor);
  if (mayWait && now < dueAt) return { kind: 'wait', dueAt };
  return decideUnderLock(ctx, bullJob, mayWait);
}

/**
 * Decides a scheduled occurrence the common-case statement did not record (and a one-shot's),
 * in one transaction holding the job's row lock: the checks "is a run in flight?", "has this job
 * already caught up?" and "how many runs so far?" and the insert that changes their answers
 * happen atomically, so two workers taking two occurrences of one job at once cannot both pass
 * them.
 */
async function decideUnderLock(ctx: FireContext, bullJob: BullJob<FireJobData>, mayWait: boolean): Promise<Decision> {
  const { jobId, version } = bullJob.data;
  return ctx.db.transaction().execute(async (trx): Promise<Decision> => {
    const found = await lockJobForFireWithService(trx, jobId);
    if (!found) return { kind: 'missing' };
    if (found.service.disabled) return { kind: 'disabled' };
    const row = found.job;
    const job = jobFromRow(row);
    const occurrence = occurrenceOf(bullJob.id ?? '', fallbackInstant(bullJob, job));
    // Read under the job's lock: a calendar a job lists cannot be deleted (migration 0030).
    const exclusion = job.calendars?.length
      ? exclusionOf((await findCalendars(trx, job.serviceId, job.calendars)).map(calendarSpecOf))
      : undefined;
    const now = Date.now();
    // Jitter delays the start, never the occurrence's instant (`tickwork-scheduled-for`).
    const dueAt = dueAtOf(job, occurrence.scheduledFor);
    if (occurrence.trigger === 'schedule' && mayWait && now < dueAt) {
      return { kind: 'wait', dueAt };
    }
    const scheduledFor = new Date(occurrence.scheduledFor);
    const existingDecision = async (existing: RunRow): Promise<Decision> => {
      if (existing.status === 'skipped')
        return { kind: 'skipped', reason: existing.skip_reason as SkipReason, run: existing, occurrence };
      // A worker that recorded this run may have died before recording the slots skipped
      // before it (the common case records them after its commit): record them now, once.
      if (job.version === existing.job_version)
        await recordSkippedSlots(ctx, trx, job, existing.job_version, occurrence.scheduledFor, undefined, exclusion);
      return {
        kind: 'deliver',
        run: existing,
        job,
        runCount: row.run_count,
        catchUp: false,
        occurrence,
        found,
        ...(exclusion ? { exclusion } : {}),
      };
    };
    const base = { jobId, serviceId: job.serviceId, jobVersion: version, scheduledFor, trigger: 'schedule' as const };
    const lateSince = lateSinceOf(job, occurrence.scheduledFor);
    if (
      job.state === 'active' &&
      job.version === version &&
      job.overlap !== 'skip' &&
      exclusion?.excludes(occurrence.scheduledFor) !== true &&
      now <= lateSince &&
      outsideLimits(job, occurrence.scheduledFor, row.run_count) === undefined &&
      !isSkipRequested(row, occurrence.scheduledFor)
    ) {
      // Every check passes without a query, so record it straight away. The insert finds the
      // row of an occurrence decided already (a retry, a redelivery after a crash) by its
      // unique key, which is what looking it up first would have found.
      const { run, created } = await recordOccurrence(trx, { ...base, id: uuidv7(), status: 'running' });
      if (!created) return existingDecision(run);
      await recordSkippedSlots(ctx, trx, job, version, occurrence.scheduledFor, undefined, exclusion);
      return {
        kind: 'deliver',
        run,
        job,
        runCount: row.run_count + 1,
        catchUp: false,
        occurrence,
        found,
        ...(exclusion ? { exclusion } : {}),
      };
    }
    // A retry, or another worker after a crash: the occurrence was decided already.
    const existing = await findOccurrenceRun(trx, jobId, scheduledFor, 'schedule');
    if (existing) return existingDecision(existing);
    const skip = async (reason: SkipReason): Promise<Decision> => {
      const { run } = await recordOccurrence(trx, { ...base, id: uuidv7(), status: 'skipped', skipReason: reason });
      return { kind: 'skipped', reason, run, occurrence };
    };
    if (job.state === 'paused') return skip('paused');
    if (job.version !== version) return skip('superseded');
    if (job.state === 'completed') return { kind: 'dropped', reason: 'completed', complete: false, occurrence };
    const limit = outsideLimits(job, occurrence.scheduledFor, row.run_count);
    if (limit) return { kind: 'dropped', reason: limit, complete: limit !== 'before_start', occurrence };

    await recordSkippedSlots(ctx, trx, job, version, occurrence.scheduledFor, undefined, exclusion);
    // A day one of the job's calendars excludes: recorded, not delivered (before misfire: an
    // excluded occurrence is `excluded` however late it comes).
    if (exclusion?.excludes(occurrence.scheduledFor)) {
      const skipped = await skip('excluded');
      // The schedule's last occurrence (a one-shot's, the last in its window) fell on an excluded
      // day: nothing is left to fire, whatever the calendars say later.
      if (lastOccurrence(job, occurrence.scheduledFor, row.run_count)) await completeJob(trx, jobId, version);
      return skipped;
    }
    if (isSkipRequested(row, occurrence.scheduledFor)) {
      const skipped = await skip('requested');
      await moveOnAfterSkip(trx, job, row.run_count, occurrence.scheduledFor);
      return skipped;
    }

    const caughtUp = now > lateSince && (await hasCaughtUp(trx, jobId, scheduledFor, uuidv7Floor(lateSince)));
    const verdict = misfireVerdict(job, occurrence.scheduledFor, now, caughtUp);
    if (verdict === 'missed') return skip('missed');
    if (job.overlap === 'skip' && (await hasRunInFlight(trx, jobId, new Date(now)))) return skip('overlap');
    const { run, created } = await recordOccurrence(trx, { ...base, id: uuidv7(), status: 'running' });
    return {
      kind: 'deliver',
      run,
      job,
      runCount: row.run_count + (created ? 1 : 0),
      catchUp: verdict === 'catch_up',
      occurrence,
      found,
      ...(exclusion ? { exclusion } : {}),
    };
  });
}

/** Whether no occurrence follows `scheduledFor` (an instant that cannot be computed is not an end). */
function lastOccurrence(job: Job, scheduledFor: number, runCount: number): boolean {
  try {
    return nextRunOf(job, scheduledFor, runCount) === null;
  } catch (error) {
    if (error instanceof ScheduleComputeError) return false;
    throw error;
  }
}

/** Takes a completed job's scheduler out of Redis; the reconciler removes it if this fails. */
async function retire(ctx: FireContext, jobId: string, version: number): Promise<void> {
  if (!ctx.queue) return;
  await removeRegistration(ctx.queue, jobId, version).catch((error: unknown) => {
    ctx.logger.warn({ err: error, jobId }, 'could not remove the scheduler of a completed job');
  });
}

export async function fireOccurrence(
  ctx: FireContext,
  bullJob: BullJob<FireJobData>,
  token?: string,
): Promise<FireResult> {
  const { jobId, version, runId } = bullJob.data;
  const missing = (): FireResult => {
    // An occurrence can reach a worker before the create that registered it has committed (a
    // one-shot due within milliseconds, a manual run): give a young one a moment to appear.
    if (Date.now() - bullJob.timestamp < UNCOMMITTED_GRACE_MS && bullJob.attemptsMade < 5) {
      throw new RetryLaterError(500, 'job not visible yet; its create may still be committing');
    }
    // Deleted (or never committed): nothing to deliver, nothing to record.
    ctx.logger.info({ jobId, bullJobId: bullJob.id }, 'job is gone; occurrence dropped');
    return { outcome: 'gone' };
  };

  let run: Pick<RunRow, 'id'>;
  let occurrence: Occurrence;
  let job: Job;
  let found: JobForFire;
  let schedule: { runCount: number; catchUp: boolean; exclusion?: Exclusion | undefined } | undefined;
  let startedAttempt: number | undefined;
  if (runId !== undefined) {
    const read = await findJobForFire(ctx.db, jobId);
    if (!read) return missing();
    found = read;
    if (found.service.disabled) {
      // A run the api already recorded (run now, replay) must not stay `running` for ever.
      await recordOutcome(
        ctx.db,
        { id: runId, jobId },
        { status: 'failed', httpStatus: null, durationMs: null, responseExcerpt: null, error: 'service disabled' },
      );
      return { outcome: 'skipped', reason: 'service disabled' };
    }
    job = jobFromRow(found.job);
    // Run now or replay: the api recorded the run; it is delivered whatever the job's state.
    const requested = await findRunById(ctx.db, runId);
    if (!requested) return { outcome: 'gone' };
    run = requested;
    occurrence = { trigger: requested.trigger as RunTrigger, scheduledFor: requested.scheduled_for.getTime() };
  } else {
    const decision = await decideScheduled(ctx, bullJob, token);
    switch (decision.kind) {
      case 'missing':
        return missing();
      case 'disabled':
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
      case 'deliver':
        run = decision.run;
        job = decision.job;
        found = decision.found;
        occurrence = decision.occurrence;
        schedule = { runCount: decision.runCount, catchUp: decision.catchUp, exclusion: decision.exclusion };
        startedAttempt = decision.started;
    }
  }

  let attempt: number;
  if (startedAttempt !== undefined) {
    attempt = startedAttempt;
  } else {
    const started = await startAttempt(ctx.db, run.id, ctx.workerId);
    if (!started) return { outcome: 'already-ended', runId: run.id };
    attempt = started.attempts;
  }
  const log = ctx.logger.child({ jobId, runId: run.id, attempt });
  if (schedule?.catchUp && attempt === 1)
    log.info({ scheduledFor: occurrence.scheduledFor }, 'late occurrence delivered as the catch-up');

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
  let nextRunAt: number | null = null;
  /** `nextRunAt` without the days the job's calendars exclude: what the job shows. */
  let shownNextRunAt: number | null = null;
  let uncomputable = false;
  if (schedule) {
    try {
      const after = Math.max(Date.now(), occurrence.scheduledFor);
      nextRunAt = nextRunOf(job, after, schedule.runCount);
      shownNextRunAt =
        nextRunAt === null || !schedule.exclusion
          ? nextRunAt
          : nextRunOf(job, after, schedule.runCount, schedule.exclusion);
    } catch (error) {
      if (!(error instanceof ScheduleComputeError)) throw error;
      // Not an end: the job stays active, with no nextRunAt, and its scheduler stays registered.
      uncomputable = true;
      log.error({ err: error, cron: error.cron, timezone: error.timezone }, 'could not compute the next occurrence');
    }
  }
  const complete = schedule !== undefined && ended && nextRunAt === null && !uncomputable;
  await recordOutcomeGrouped(
    ctx.db,
    { id: run.id, jobId },
    {
      status: verdict.status,
      httpStatus: outcome.httpStatus,
      durationMs: outcome.durationMs,
      responseExcerpt: outcome.responseExcerpt,
      error: outcome.result.kind === 'refused' ? 'destination not allowed' : outcome.error,
    },
    schedule
      ? { version: job.version, nextRunAt: shownNextRunAt === null ? null : new Date(shownNextRunAt), complete }
      : undefined,
  );
  if (complete && !('at' in job.schedule)) await retire(ctx, jobId, job.version);
  log.info(
    { status: verdict.status, httpStatus: outcome.httpStatus, durationMs: outcome.durationMs },
    'callback attempted',
  );
  if (verdict.status === 'retrying') {
    throw new RetryLaterError(verdict.retryInMs ?? 1_000, outcome.error ?? 'retrying', {
      runId: run.id,
      trigger: occurrence.trigger,
      attempt,
      scheduledFor: occurrence.scheduledFor,
      deliveryStartedAt,
      durationMs: outcome.durationMs,
    });
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
    ...(schedule?.catchUp ? { catchUp: true } : {}),
  };
}
