/**
 * Decide: what one processing of an occurrence comes to, as a `Decision`. The rules of a
 * scheduled occurrence are core's `judgeOccurrence`; here are only the reads they need and the
 * run a verdict records, under the job's row lock, so a decision and the row that makes it
 * binding are atomic: a redelivery finds the same row and run id.
 */
import type { Job as BullJob } from 'bullmq';
import type { Kysely } from 'kysely';
import {
  exclusionOf,
  jitterHash,
  jitterKeyOf,
  judgeOccurrence,
  lateSinceOf,
  nextRunOf,
  ScheduleComputeError,
  uuidv7,
  uuidv7Floor,
  type Exclusion,
  type Job,
  type OccurrenceFacts,
  type OccurrenceQuestion,
  type OccurrenceVerdict,
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
  lockAndRecordOnTimeGrouped,
  lockJobForFireWithService,
  recordOccurrence,
  runNeighbours,
  type Database,
  type JobForFire,
  type RunRow,
} from '@tickwork/db';
import { occurrenceOf, type FireJobData } from '@tickwork/queue';
import { moveOnAfterSkip } from './requested-skip.ts';
import type { Decision, FireContext, SlotCheck } from './types.ts';

/** A verdict that asks nothing more. */
type Answered = Exclude<OccurrenceVerdict, { kind: 'ask' }>;

export function decide(ctx: FireContext, bullJob: BullJob<FireJobData>, token: string | undefined): Promise<Decision> {
  const { runId } = bullJob.data;
  return runId === undefined ? decideScheduled(ctx, bullJob, token) : decideRequested(ctx, bullJob.data.jobId, runId);
}

/** Run now or replay: the api recorded the run; it is delivered whatever the job's state. */
async function decideRequested(ctx: FireContext, jobId: string, runId: string): Promise<Decision> {
  const found = await findJobForFire(ctx.db, jobId);
  if (!found) return { kind: 'missing' };
  if (found.service.disabled) return { kind: 'disabled', requestedRun: { id: runId, jobId } };
  const job = jobFromRow(found.job, ctx.secretKeys);
  const run = await findRunById(ctx.db, runId);
  if (!run) return { kind: 'gone' };
  const occurrence = { trigger: run.trigger as RunTrigger, scheduledFor: run.scheduled_for.getTime() };
  return { kind: 'deliver', run, job, found, occurrence };
}

/** What the job's row (and the clock) say of a scheduled occurrence, for `judgeOccurrence`. */
function factsOf(
  found: JobForFire,
  job: Job,
  occurrence: { version: number; scheduledFor: number },
  now: number,
  mayWait: boolean,
  excluded: boolean,
): OccurrenceFacts {
  return {
    job,
    skipUntil: found.job.skip_until?.getTime() ?? null,
    runCount: found.job.run_count,
    serviceDisabled: found.service.disabled,
    version: occurrence.version,
    scheduledFor: occurrence.scheduledFor,
    now,
    mayWait,
    excluded,
  };
}

/**
 * A scheduled occurrence. The common case in one statement (`lockAndRecordOnTime`), shared with
 * the other occurrences in flight on this worker (`lockAndRecordOnTimeGrouped`, a group commit):
 * lock, check, record the run with its first attempt started, and read the version's neighbouring
 * runs for the skipped-slot check; two round trips in all, this and later the outcome, each grouped. The statement only
 * ever answers "deliver"; when it records nothing, the verdicts it can be given without the lock
 * come from the row it read, and the rest is decided in a transaction under the job's lock.
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
  if (!bullJobId.startsWith('repeat:') && !isCatchUp(bullJobId)) return decideUnderLock(ctx, bullJob, mayWait);
  const now = Date.now();
  const scheduledFor = occurrenceOf(bullJobId, 0).scheduledFor;
  const onTime = await lockAndRecordOnTimeGrouped(ctx.db, {
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
  const job = jobFromRow(found.job, ctx.secretKeys);
  if (onTime.runId !== undefined) {
    return {
      kind: 'deliver',
      run: { id: onTime.runId },
      job,
      found,
      occurrence: { trigger: 'schedule', scheduledFor },
      schedule: { runCount: found.job.run_count + 1, catchUp: false },
      started: 1,
      slots: { job, version, scheduledFor, neighbours: onTime.neighbours, catchUp: isCatchUp(bullJobId) },
    };
  }
  // `disabled` and `wait` come before the calendars' rule, so the row alone decides them.
  const verdict = judgeOccurrence(factsOf(found, job, { version, scheduledFor }, now, mayWait, false));
  if (verdict.kind === 'disabled' || verdict.kind === 'wait') return unrecorded(verdict);
  return decideUnderLock(ctx, bullJob, mayWait);
}

/** The two verdicts that record nothing and need no occurrence. */
function unrecorded(verdict: Extract<OccurrenceVerdict, { kind: 'disabled' | 'wait' }>): Decision {
  return verdict.kind === 'wait' ? { kind: 'wait', dueAt: verdict.dueAt } : { kind: 'disabled' };
}

/** Answers the questions a verdict asks, each with its query, until it asks none. */
async function answered(trx: Kysely<Database>, facts: OccurrenceFacts, verdict: OccurrenceVerdict): Promise<Answered> {
  if (verdict.kind !== 'ask') return verdict;
  const more: OccurrenceFacts = { ...facts, [verdict.question]: await ask(trx, facts, verdict.question) };
  return answered(trx, more, judgeOccurrence(more));
}

function ask(trx: Kysely<Database>, facts: OccurrenceFacts, question: OccurrenceQuestion): Promise<boolean> {
  const { job, scheduledFor, now } = facts;
  if (question === 'runInFlight') return hasRunInFlight(trx, job.id, new Date(now));
  return hasCaughtUp(trx, job.id, new Date(scheduledFor), uuidv7Floor(lateSinceOf(job, scheduledFor)));
}

/** The job's calendars, when it lists any. Read under the job's lock: a listed calendar cannot be deleted. */
async function exclusionFor(trx: Kysely<Database>, job: Job): Promise<Exclusion | undefined> {
  if (!job.calendars?.length) return undefined;
  return exclusionOf((await findCalendars(trx, job.serviceId, job.calendars)).map(calendarSpecOf));
}

/**
 * A scheduled occurrence the common-case statement did not record (and a one-shot's), decided in
 * one transaction holding the job's row lock: the questions "is a run in flight?", "has this job
 * already caught up?" and "how many runs so far?" and the insert that changes their answers
 * happen atomically, so two workers taking two occurrences of one job at once cannot both pass.
 */
function decideUnderLock(ctx: FireContext, bullJob: BullJob<FireJobData>, mayWait: boolean): Promise<Decision> {
  const { jobId, version } = bullJob.data;
  return ctx.db.transaction().execute(async (trx): Promise<Decision> => {
    const found = await lockJobForFireWithService(trx, jobId);
    if (!found) return { kind: 'missing' };
    const row = found.job;
    const job = jobFromRow(row, ctx.secretKeys);
    const occurrence = occurrenceOf(bullJob.id ?? '', fallbackInstant(bullJob, job));
    const exclusion = found.service.disabled ? undefined : await exclusionFor(trx, job);
    const excluded = exclusion?.excludes(occurrence.scheduledFor) === true;
    const onSchedule = occurrence.trigger === 'schedule';
    const facts = factsOf(
      found,
      job,
      { version, scheduledFor: occurrence.scheduledFor },
      Date.now(),
      mayWait && onSchedule,
      excluded,
    );
    const scheduledFor = new Date(occurrence.scheduledFor);
    const base = { jobId, serviceId: job.serviceId, jobVersion: version, scheduledFor, trigger: 'schedule' as const };
    // The neighbours are read here, under the job's lock, like the on-time statement's.
    const slots = async (slotVersion: number): Promise<SlotCheck> => ({
      job,
      version: slotVersion,
      scheduledFor: occurrence.scheduledFor,
      exclusion,
      catchUp: isCatchUp(bullJob.id ?? ''),
      neighbours: await runNeighbours(trx, jobId, slotVersion, scheduledFor),
    });
    const delivering = (run: Pick<RunRow, 'id'>, runCount: number, catchUp: boolean, check?: SlotCheck): Decision => ({
      kind: 'deliver',
      run,
      job,
      found,
      occurrence,
      schedule: { runCount, catchUp, exclusion },
      slots: check,
    });
    // A retry, or another worker after a crash: the occurrence was decided already. The worker
    // that recorded it may have died before checking the slots skipped before it: check them
    // again (each is recorded once), unless the run was recorded under another version or paused.
    const decided = async (existing: RunRow): Promise<Decision> => {
      const current = job.version === existing.job_version;
      if (existing.status !== 'skipped')
        return delivering(existing, row.run_count, false, current ? await slots(existing.job_version) : undefined);
      const reason = existing.skip_reason as SkipReason;
      const check = current && reason !== 'paused' ? await slots(existing.job_version) : undefined;
      return { kind: 'skipped', reason, run: existing, occurrence, slots: check };
    };

    const first = judgeOccurrence(facts);
    if (first.kind === 'disabled' || first.kind === 'wait') return unrecorded(first);
    if (first.kind === 'deliver') {
      // Every rule passes without a query, so record it straight away. The insert finds the row
      // of an occurrence decided already by its unique key, which is what looking it up first
      // would have found.
      const { run, created } = await recordOccurrence(trx, { ...base, id: uuidv7(), status: 'running' });
      return created ? delivering(run, row.run_count + 1, false, await slots(version)) : decided(run);
    }
    const existing = await findOccurrenceRun(trx, jobId, scheduledFor, 'schedule');
    if (existing) return decided(existing);

    const verdict = await answered(trx, facts, first);
    switch (verdict.kind) {
      case 'disabled':
      case 'wait':
        return unrecorded(verdict);
      case 'drop':
        // Before its window the job has more to fire; after it, or past maxRuns, nothing.
        return {
          kind: 'dropped',
          reason: verdict.reason,
          complete: verdict.reason !== 'completed' && verdict.reason !== 'before_start',
          occurrence,
        };
      case 'deliver': {
        const { run, created } = await recordOccurrence(trx, { ...base, id: uuidv7(), status: 'running' });
        return delivering(run, row.run_count + (created ? 1 : 0), verdict.catchUp, await slots(version));
      }
      case 'skip': {
        const { reason } = verdict;
        const { run } = await recordOccurrence(trx, { ...base, id: uuidv7(), status: 'skipped', skipReason: reason });
        // The schedule's last occurrence (a one-shot's, the last in its window) fell on an excluded
        // day: nothing is left to fire, whatever the calendars say later.
        if (reason === 'excluded' && lastOccurrence(job, occurrence.scheduledFor, row.run_count))
          await completeJob(trx, jobId, version);
        if (reason === 'requested') await moveOnAfterSkip(trx, job, row.run_count, occurrence.scheduledFor);
        // A paused or superseded occurrence says nothing of the version's timer: no slot check.
        const check = reason === 'paused' || reason === 'superseded' ? undefined : await slots(version);
        return { kind: 'skipped', reason, run, occurrence, slots: check };
      }
    }
  });
}

/** Whether the BullMQ job is a catch-up (`catchUpJobIdOf`): decided, maybe, after later occurrences of its version. */
function isCatchUp(bullJobId: string): boolean {
  return bullJobId.startsWith('catchup:');
}

/** The instant a BullMQ job stands for when its id does not carry one (one-shots). */
function fallbackInstant(bullJob: BullJob<FireJobData>, job: Job): number {
  if ('at' in job.schedule) return Date.parse(job.schedule.at);
  return bullJob.timestamp + (bullJob.opts.delay ?? 0);
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
