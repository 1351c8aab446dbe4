import { sql, type Kysely } from 'kysely';
import type { RunStatus, RunTrigger, SkipReason } from '@tickwork/core';
import type { Database, JobRow, RunRow } from '../types.ts';
import { pageOf, STAMP_TEXT_SQL, type Page, type Stamped, type StampText } from './cursor.ts';
import { jobForFireOf, type JobForFire } from './jobs.ts';
import { PREPARE } from '../prepared.ts';
import { versionOfJobIf, type VersionStamp } from './job-versions.ts';

export interface NewRun {
  id: string;
  jobId: string;
  serviceId: string;
  jobVersion: number;
  scheduledFor: Date;
  trigger: RunTrigger;
  status: RunStatus;
  skipReason?: SkipReason | null;
  replayOf?: string | null;
}

/**
 * Records an occurrence, once. The unique key (job, scheduled_for, trigger) makes a second
 * delivery of the same occurrence find the first one's row (and its id, the `webhook-id`)
 * instead of writing another. A new scheduled run that is not skipped counts towards the job's
 * `run_count` (what `maxRuns` limits); manual runs and replays do not.
 */
export async function recordOccurrence(db: Kysely<Database>, run: NewRun): Promise<{ run: RunRow; created: boolean }> {
  const inserted = await db
    .with('ins', (qb) =>
      qb
        .insertInto('runs')
        .values({
          id: run.id,
          job_id: run.jobId,
          service_id: run.serviceId,
          job_version: run.jobVersion,
          scheduled_for: run.scheduledFor,
          trigger: run.trigger,
          status: run.status,
          skip_reason: run.skipReason ?? null,
          replay_of: run.replayOf ?? null,
          ...(run.status === 'skipped' ? { finished_at: new Date() } : {}),
        })
        .onConflict((oc) => oc.columns(['job_id', 'scheduled_for', 'trigger']).doNothing())
        .returningAll(),
    )
    .with('bump', (qb) =>
      qb
        .updateTable('jobs')
        .set((eb) => ({ run_count: eb('run_count', '+', 1) }))
        .where('id', '=', run.jobId)
        .where(sql<boolean>`exists (select 1 from ins where ins.status <> 'skipped' and ins.trigger = 'schedule')`),
    )
    .selectFrom('ins')
    .selectAll()
    .executeTakeFirst();
  if (inserted) return { run: inserted, created: true };
  const existing = await db
    .selectFrom('runs')
    .selectAll()
    .where('job_id', '=', run.jobId)
    .where('scheduled_for', '=', run.scheduledFor)
    .where('trigger', '=', run.trigger)
    .executeTakeFirst();
  if (!existing) throw new Error(`run of job ${run.jobId} at ${run.scheduledFor.toISOString()} vanished`);
  return { run: existing, created: false };
}

/**
 * Starts the next attempt of a run that is still open, and returns it; undefined when the run
 * has already ended (a redelivered occurrence whose outcome was recorded).
 */
export async function startAttempt(db: Kysely<Database>, runId: string, workerId: string): Promise<RunRow | undefined> {
  return db
    .updateTable('runs')
    .set((eb) => ({
      status: 'running',
      attempts: eb('attempts', '+', 1),
      started_at: sql`coalesce(started_at, now())`,
      worker_id: workerId,
    }))
    .where('id', '=', runId)
    .where('status', 'in', ['running', 'retrying'])
    .returningAll()
    .executeTakeFirst();
}

export interface RunOutcome {
  status: RunStatus;
  httpStatus: number | null;
  durationMs: number | null;
  responseExcerpt: string | null;
  error: string | null;
}

/**
 * Writes an attempt's outcome on the run and on its job (`lastRunAt`, `lastRunStatus`). `job`
 * carries the schedule fields a scheduled run moves on (`nextRunAt`, completion); they apply only
 * while the job is still at the run's version, so an old run never rewrites an updated job.
 */
export async function recordOutcome(
  db: Kysely<Database>,
  run: { id: string; jobId: string },
  outcome: RunOutcome,
  job?: { version: number; nextRunAt: Date | null; complete: boolean },
  /** When the run ended (a final status); now by default. */
  finishedAt: Date | null = outcome.status !== 'retrying' ? new Date() : null,
): Promise<void> {
  // One statement (the run's update as a data-modifying CTE) instead of a transaction of two or
  // three: one round trip, and still atomic. The schedule fields change only while the job is at
  // the run's version and active. One fixed text for every case, so it is prepared once per
  // connection (see prepared.ts); `scheduled` false leaves the schedule fields as they are.
  await sql`${sql.raw(PREPARE)}
    with run_outcome as (
      update runs set status = ${outcome.status}, http_status = ${outcome.httpStatus},
        duration_ms = ${outcome.durationMs},
        response_excerpt = ${outcome.responseExcerpt}, error = ${outcome.error},
          finished_at = ${finishedAt}::timestamptz
      where id = ${run.id}
    )
    update jobs set last_run_at = now(), last_run_status = ${outcome.status},
      state = case when ${job?.complete === true}::boolean and version = ${job?.version ?? 0}::integer
        and state = 'active'
        then 'completed' else state end,
      next_run_at = case when ${job !== undefined}::boolean and version = ${job?.version ?? 0}::integer
        and state = 'active'
        then ${job?.complete ? null : (job?.nextRunAt ?? null)}::timestamptz else next_run_at end
    where id = ${run.jobId}
  `.execute(db);
}

export async function findRun(db: Kysely<Database>, serviceId: string, id: string): Promise<RunRow | undefined> {
  return db.selectFrom('runs').selectAll().where('service_id', '=', serviceId).where('id', '=', id).executeTakeFirst();
}

export async function findRunById(db: Kysely<Database>, id: string): Promise<RunRow | undefined> {
  return db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface RunListFilter {
  limit: number;
  afterId?: string | undefined;
  status?: RunStatus | undefined;
}

/** Runs of one job or of a whole service, newest first (run ids are UUIDv7), by keyset. */
async function listRuns(
  db: Kysely<Database>,
  owner: { column: 'job_id' | 'service_id'; id: string },
  filter: RunListFilter,
): Promise<Page<RunRow>> {
  let query = db.selectFrom('runs').selectAll().where(owner.column, '=', owner.id);
  if (filter.afterId) query = query.where('id', '<', filter.afterId);
  if (filter.status) query = query.where('status', '=', filter.status);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(filter.limit + 1)
    .execute();
  return pageOf(rows, filter.limit);
}

/** A job's runs, newest first. */
export function listRunsOfJob(db: Kysely<Database>, jobId: string, filter: RunListFilter): Promise<Page<RunRow>> {
  return listRuns(db, { column: 'job_id', id: jobId }, filter);
}

/** A service's runs, optionally in one status (the dead-letter list is `status = dead`), newest first. */
export function listRunsOfService(
  db: Kysely<Database>,
  serviceId: string,
  filter: RunListFilter,
): Promise<Page<RunRow>> {
  return listRuns(db, { column: 'service_id', id: serviceId }, filter);
}

/** The run's columns by name, not `*`, for named statements (`job-columns.ts` says why). */
const RUN_FIELDS = [
  'id',
  'job_id',
  'service_id',
  'job_version',
  'scheduled_for',
  'trigger',
  'status',
  'skip_reason',
  'attempts',
  'started_at',
  'finished_at',
  'duration_ms',
  'http_status',
  'response_excerpt',
  'error',
  'worker_id',
  'replay_of',
  'created_at',
] as const satisfies readonly (keyof RunRow)[];
// Every field of RunRow is listed (a column added to the type but not here fails to compile).
true satisfies [Exclude<keyof RunRow, (typeof RUN_FIELDS)[number]>] extends [never] ? true : false;
const RUN_COLUMNS = sql.raw(RUN_FIELDS.join(', '));

/** Whose runs a page lists: one job's, or a whole service's. */
export interface RunOwner {
  column: 'job_id' | 'service_id';
  id: string;
}

/**
 * A page of runs ({@link listRunsOfJob}, {@link listRunsOfService}), ids and row versions only
 * ({@link Stamped}) in one text ({@link StampText}): a run changes as it runs, so a serialized run is
 * good while its stamp matches.
 */
export async function listRunStamps(db: Kysely<Database>, owner: RunOwner, filter: RunListFilter): Promise<StampText> {
  // The column is one of two fixed names, never input: at most 8 statement texts.
  const { rows } = await sql<{ stamps: string }>`${sql.raw(PREPARE)} select ${sql.raw(STAMP_TEXT_SQL)} as stamps
    from (select id, xmin from runs where ${sql.ref(owner.column)} = ${owner.id}${
      filter.afterId ? sql` and id < ${filter.afterId}` : sql``
    }${filter.status ? sql` and status = ${filter.status}` : sql``} order by id desc limit ${filter.limit + 1}) page`.execute(
    db,
  );
  return { text: rows[0]?.stamps ?? '', limit: filter.limit };
}

/** Runs of an owner by id, each with its row version; ids of other owners are left out. */
export async function findStampedRuns(
  db: Kysely<Database>,
  owner: RunOwner,
  ids: readonly string[],
): Promise<Array<RunRow & { stamp: string }>> {
  const { rows } = await sql<
    RunRow & { stamp: string }
  >`${sql.raw(PREPARE)} select ${RUN_COLUMNS}, xmin::text as stamp from runs
    where ${sql.ref(owner.column)} = ${owner.id} and id = any(${ids}::uuid[])`.execute(db);
  return rows;
}

/** The run already recorded for an occurrence, if any (a retry, or a redelivery after a crash). */
export async function findOccurrenceRun(
  db: Kysely<Database>,
  jobId: string,
  scheduledFor: Date,
  trigger: RunTrigger,
): Promise<RunRow | undefined> {
  return db
    .selectFrom('runs')
    .selectAll()
    .where('job_id', '=', jobId)
    .where('scheduled_for', '=', scheduledFor)
    .where('trigger', '=', trigger)
    .executeTakeFirst();
}

/**
 * How long a run may stay `running`/`retrying` and still count as in flight for the overlap
 * check. A run whose BullMQ job was lost (Redis lost its data mid-run) must not block its job for
 * ever; no real run lasts this long (20 attempts, at most 5 min each plus 1 h between them).
 */
const RUN_IN_FLIGHT_MAX_AGE_MS = 24 * 3_600_000;

/** Whether another run of the job is still in flight (for `overlap: skip`). */
export async function hasRunInFlight(db: Kysely<Database>, jobId: string, now: Date): Promise<boolean> {
  const row = await db
    .selectFrom('runs')
    .select('id')
    .where('job_id', '=', jobId)
    .where('status', 'in', ['running', 'retrying'])
    .where('created_at', '>', new Date(now.getTime() - RUN_IN_FLIGHT_MAX_AGE_MS))
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Whether the job has moved past a late occurrence: a scheduled run was recorded for a later
 * instant, or was recorded at all after the occurrence was already late (`lateSince`). Either
 * means this job's one catch-up for the outage has been taken (see `misfireVerdict`). Run ids are
 * UUIDv7, so "recorded after" is an id range on the (job_id, id) index.
 */
export async function hasCaughtUp(
  db: Kysely<Database>,
  jobId: string,
  scheduledFor: Date,
  lateSinceId: string,
): Promise<boolean> {
  const row = await db
    .selectFrom('runs')
    .select('id')
    .where('job_id', '=', jobId)
    .where('trigger', '=', 'schedule')
    .where('status', '<>', 'skipped')
    .where((eb) => eb.or([eb('scheduled_for', '>', scheduledFor), eb('id', '>', lateSinceId)]))
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Records a run the api starts itself (run now, replay) before handing it to BullMQ. Its instant
 * is `now`; two requests in the same millisecond get the next free one, since an occurrence is
 * unique per (job, instant, trigger).
 */
export async function insertRequestedRun(
  db: Kysely<Database>,
  run: {
    id: string;
    jobId: string;
    serviceId: string;
    jobVersion: number;
    trigger: 'manual' | 'replay';
    now: number;
    replayOf?: string;
  },
  /** A run now is a change in the job's history: its entry is written by the same statement. */
  stamp?: VersionStamp,
): Promise<RunRow> {
  for (let offset = 0; offset < 1_000; offset++) {
    const values = {
      id: run.id,
      job_id: run.jobId,
      service_id: run.serviceId,
      job_version: run.jobVersion,
      scheduled_for: new Date(run.now + offset),
      trigger: run.trigger,
      status: 'running',
      replay_of: run.replayOf ?? null,
    };
    const conflict = ['job_id', 'scheduled_for', 'trigger'] as const;
    const inserted = stamp
      ? await db
          .with('r', (qb) =>
            qb
              .insertInto('runs')
              .values(values)
              .onConflict((oc) => oc.columns(conflict).doNothing())
              .returningAll(),
          )
          .with('v', (qb) => versionOfJobIf(qb, run.jobId, stamp, sql`exists (select 1 from r)`))
          .selectFrom('r')
          .selectAll()
          .executeTakeFirst()
      : await db
          .insertInto('runs')
          .values(values)
          .onConflict((oc) => oc.columns(conflict).doNothing())
          .returningAll()
          .executeTakeFirst();
    if (inserted) return inserted as RunRow;
  }
  throw new Error(`no free instant for a ${run.trigger} run of job ${run.jobId}`);
}

/**
 * Deletes runs created before `cutoff`, `batchSize` at a time, each batch its own short
 * statement, so a large prune never holds many locks for long; rows a worker is updating are
 * skipped (SKIP LOCKED) and taken by a later pass. Runs still in flight are kept: their BullMQ
 * job may still come back for them. Returns how many were deleted.
 */
export async function pruneRuns(
  db: Kysely<Database>,
  cutoff: Date,
  options: { batchSize?: number; maxBatches?: number; signal?: AbortSignal } = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 1_000;
  let total = 0;
  for (let batch = 0; batch < (options.maxBatches ?? 10_000); batch++) {
    if (options.signal?.aborted) break;
    const result = await db
      .deleteFrom('runs')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('runs')
          .select('id')
          .where('created_at', '<', cutoff)
          .where('status', 'not in', ['running', 'retrying'])
          .limit(batchSize)
          .forUpdate()
          .skipLocked(),
      )
      .executeTakeFirst();
    const deleted = Number(result.numDeletedRows);
    total += deleted;
    if (deleted < batchSize) break;
  }
  return total;
}

/** Takes back a run the api recorded but could not hand to BullMQ. */
export async function deleteRun(db: Kysely<Database>, id: string): Promise<void> {
  await db.deleteFrom('runs').where('id', '=', id).execute();
}

/** The instants of a job version's nearest scheduled occurrences before and after one, if any. */
export interface Neighbours {
  previous: Date | undefined;
  next: Date | undefined;
}

/**
 * The version's scheduled runs just before and just after `at` (`tickwork_run_neighbours`,
 * migration 0062): what the fire path's skipped-slot check reads of an occurrence decided in a
 * transaction that holds the job's lock, so it sees every run recorded before it took the lock.
 */
export async function runNeighbours(
  db: Kysely<Database>,
  jobId: string,
  version: number,
  at: Date,
): Promise<Neighbours> {
  const { rows } = await sql<{ previous: Date | null; next: Date | null }>`${sql.raw(PREPARE)}
    select n.previous, n.next from tickwork_run_neighbours(${jobId}::uuid, ${version}::integer, ${at}::timestamptz) n
  `.execute(db);
  return { previous: rows[0]?.previous ?? undefined, next: rows[0]?.next ?? undefined };
}

/** Records slots no worker ever received as `skipped` (`missed`, or `excluded` by a calendar), one row each, once. */
export async function recordMissedSlots(
  db: Kysely<Database>,
  base: { jobId: string; serviceId: string; jobVersion: number },
  slots: number[],
  ids: () => string,
  reason: SkipReason = 'missed',
): Promise<number> {
  if (slots.length === 0) return 0;
  const finished = new Date();
  const inserted = await db
    .insertInto('runs')
    .values(
      slots.map((slot) => ({
        id: ids(),
        job_id: base.jobId,
        service_id: base.serviceId,
        job_version: base.jobVersion,
        scheduled_for: new Date(slot),
        trigger: 'schedule',
        status: 'skipped',
        skip_reason: reason,
        finished_at: finished,
      })),
    )
    .onConflict((oc) => oc.columns(['job_id', 'scheduled_for', 'trigger']).doNothing())
    .executeTakeFirst();
  return Number(inserted.numInsertedOrUpdatedRows ?? 0);
}

/** A scheduled occurrence for {@link lockAndRecordOnTime}. */
export interface OnTimeOccurrence {
  /** The id its run gets when it is recorded. */
  runId: string;
  jobId: string;
  version: number;
  scheduledFor: number;
  workerId: string;
  now: number;
  jitterHash: number;
  /** Whether an occurrence before its jittered start should wait (not be recorded). */
  mayWait: boolean;
}

/** A row of the on-time statement (one or grouped): the job read under its lock, and what was written. */
export type OnTimeRow = JobRow & {
  signing_secret: string;
  previous_signing_secret: string | null;
  previous_secret_expires_at: Date | null;
  disabled_at: Date | null;
  recorded_run_id: string | null;
  previous_scheduled_for: Date | null;
  next_scheduled_for: Date | null;
};

export function onTimeRecordOf(row: OnTimeRow): OnTimeRecord {
  const { recorded_run_id, previous_scheduled_for, next_scheduled_for, ...rest } = row;
  return {
    found: jobForFireOf(rest)!,
    runId: recorded_run_id ?? undefined,
    neighbours: { previous: previous_scheduled_for ?? undefined, next: next_scheduled_for ?? undefined },
  };
}

/** What {@link lockAndRecordOnTime} found and did. */
export interface OnTimeRecord {
  /** The job with its service's secrets, as the statement read it under the job's row lock. */
  found: JobForFire;
  /** The run recorded for the occurrence, already started (attempt 1); undefined when a check failed. */
  runId: string | undefined;
  /**
   * The job version's scheduled runs just before and after this occurrence, read under the job's
   * lock (so as of when it was granted, not when the statement began).
   */
  neighbours: Neighbours;
}
