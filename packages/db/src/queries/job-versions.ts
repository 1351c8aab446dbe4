/**
 * A job's version history (migration 0020): every change is written with the change itself, in
 * the same statement or transaction, and carries the job's row as it stood after it (for a delete,
 * as it stood before). The row is copied by Postgres (`to_jsonb`), so every writer — the api, the
 * worker's resume-due task — records the same shape without a serializer of its own.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Actor, JobChange, SecretKeys } from '@tickwork/core';
import type { Database, JobRow, JobVersionRow } from '../types.ts';
import { pageOf, type Page } from './cursor.ts';
import { PREPARE } from '../prepared.ts';
import { JOB_COLUMNS } from './job-columns.ts';
import { newJobValues, type NewJob } from './jobs.ts';
import { groupOf, type GroupWriter, type StatementGroup } from './statement-group.ts';

/** What a history entry says beside the job's row: its id, the change, who made it, when. */
export interface VersionStamp {
  id: string;
  change: JobChange;
  actor: Actor;
  at: Date;
}

/** The entry's columns, selected from a row source named `source` (a table alias or a CTE). */
function entryOf(source: string, stamp: VersionStamp) {
  const from = sql.table(source);
  return sql`select ${stamp.id}::uuid, ${from}.id, ${from}.service_id, ${from}.version, ${stamp.change},
    ${stamp.actor.kind}, ${stamp.actor.id}, ${stamp.at}::timestamptz, to_jsonb(${from}) from ${from}`;
}

const ENTRY_COLUMNS = [
  'id',
  'job_id',
  'service_id',
  'version',
  'change',
  'actor_kind',
  'actor_id',
  'changed_at',
  'definition',
] as const;

/** A create for {@link insertJobsRecorded}: the new job's row (`newJobValues`) and its first history entry. */
export interface RecordedCreate {
  values: ReturnType<typeof newJobValues>;
  stamp: VersionStamp;
}

/**
 * Creates a job and its first history entry, in one statement. The entry copies the row, so its
 * headers stay sealed under `keys` as the job's are.
 */
export async function insertJobRecorded(
  db: Kysely<Database>,
  job: NewJob,
  stamp: VersionStamp,
  keys: SecretKeys,
): Promise<JobRow> {
  return (await insertJobsRecorded(db, [{ values: newJobValues(job, keys), stamp }]))[0]!;
}

/**
 * Creates jobs and their first history entries, in one statement from arrays: one fixed text whatever
 * their number, so it is prepared once per connection (a lone create is a group of one). The rows come
 * back in the creates' order. The statement is all or nothing: one name taken, one missing calendar,
 * or a service whose `maxJobs` the statement's rows would pass (its trigger counts them together, once
 * per service) fails every create of it.
 */
export async function insertJobsRecorded(db: Kysely<Database>, creates: readonly RecordedCreate[]): Promise<JobRow[]> {
  const column = <T>(f: (c: RecordedCreate) => T): T[] => creates.map(f);
  const { rows } = await sql<JobRow>`${sql.raw(PREPARE)}
    with n as (
      select * from unnest(
        ${column((c) => c.values.id)}::uuid[], ${column((c) => c.values.service_id)}::uuid[],
        ${column((c) => c.values.name)}::text[], ${column((c) => c.values.description)}::text[],
        ${column((c) => c.values.labels)}::text[], ${column((c) => c.values.schedule)}::text[],
        ${column((c) => c.values.target)}::text[], ${column((c) => c.values.target_body)}::text[],
        ${column((c) => c.values.target_headers)}::text[], ${column((c) => c.values.start_at)}::timestamptz[],
        ${column((c) => c.values.end_at)}::timestamptz[], ${column((c) => c.values.max_runs)}::integer[],
        ${column((c) => c.values.jitter_ms)}::integer[], ${column((c) => c.values.overlap)}::text[],
        ${column((c) => c.values.misfire)}::text[], ${column((c) => c.values.retry)}::text[],
        ${column((c) => `{${c.values.calendar_ids.join(',')}}`)}::text[],
        ${column((c) => c.values.alert_after_ms)}::integer[], ${column((c) => c.values.state)}::text[],
        ${column((c) => c.values.next_run_at)}::timestamptz[], ${column((c) => c.values.created_at)}::timestamptz[],
        ${column((c) => c.stamp.id)}::uuid[], ${column((c) => c.stamp.change)}::text[],
        ${column((c) => c.stamp.actor.kind)}::text[], ${column((c) => c.stamp.actor.id)}::text[],
        ${column((c) => c.stamp.at)}::timestamptz[]
      ) with ordinality as n(id, service_id, name, description, labels, schedule, target, target_body,
        target_headers, start_at, end_at, max_runs, jitter_ms, overlap, misfire, retry, calendar_ids,
        alert_after_ms, state, next_run_at, now, stamp_id, change, actor_kind, actor_id, changed_at, ord)
    ), ins as (
      insert into jobs (id, service_id, name, description, labels, schedule, target, target_body, target_headers,
        start_at, end_at, max_runs, jitter_ms, overlap, misfire, retry, calendar_ids, alert_after_ms, state,
        version, next_run_at, created_at, updated_at)
      select id, service_id, name, description, labels::jsonb, schedule::jsonb, target::jsonb, target_body,
        target_headers, start_at, end_at, max_runs, jitter_ms, overlap, misfire::jsonb, retry::jsonb,
        calendar_ids::uuid[], alert_after_ms, state, 1, next_run_at, now, now
      from n order by ord
      returning *
    ), v as (
      insert into job_versions (${sql.raw(ENTRY_COLUMNS.join(', '))})
      select n.stamp_id, ins.id, ins.service_id, ins.version, n.change, n.actor_kind, n.actor_id, n.changed_at,
        to_jsonb(ins)
      from ins join n on n.id = ins.id
    )
    select ${JOB_COLUMNS} from ins as jobs
  `.execute(db);
  const byId = new Map(rows.map((row) => [row.id, row]));
  return creates.map((c) => byId.get(c.values.id)!);
}

const createWriter: GroupWriter<RecordedCreate, JobRow> = {
  max: 100,
  many: insertJobsRecorded,
  one: async (db, create) => (await insertJobsRecorded(db, [create]))[0]!,
};

const createGroups = new WeakMap<Kysely<Database>, StatementGroup<RecordedCreate, JobRow>>();

/**
 * {@link insertJobRecorded}, group-committed (`statement-group.ts`) with the other creates made through
 * the same database handle at the same time: one statement, one commit and one run of the `maxJobs`
 * trigger for them all. Each caller gets its own row once that statement has committed, or its own
 * error: a group that fails (a name taken, a service that would pass its quota, a calendar gone) is
 * written again create by create, so only the creates at fault fail, with the error a lone create gets,
 * and the quota stays exact (each of those is the lone statement it always was).
 */
export function insertJobRecordedGrouped(
  db: Kysely<Database>,
  job: NewJob,
  stamp: VersionStamp,
  keys: SecretKeys,
): Promise<JobRow> {
  return groupOf(createGroups, db, createWriter).run({ values: newJobValues(job, keys), stamp });
}

/** Records the job's row as it stands now (within the caller's transaction, after its change). */
export async function recordVersion(db: Kysely<Database>, jobId: string, stamp: VersionStamp): Promise<void> {
  await versionOfJobIf(db, jobId, stamp, sql`true`).execute();
}

/** The insert of an entry with the job's row as it stands, when `condition` holds (for a CTE of a larger statement). */
export function versionOfJobIf(
  qb: Pick<Kysely<Database>, 'insertInto'>,
  jobId: string,
  stamp: VersionStamp,
  condition: RawBuilder<unknown>,
) {
  return qb
    .insertInto('job_versions')
    .columns(ENTRY_COLUMNS)
    .expression(sql`${entryOf('jobs', stamp)} where jobs.id = ${jobId} and ${condition}`);
}

/** Deletes a service's job and records the delete with the row as it was, in one statement. */
export async function deleteJobRecorded(
  db: Kysely<Database>,
  serviceId: string,
  id: string,
  stamp: VersionStamp,
): Promise<JobRow | undefined> {
  return db
    .with('d', (qb) => qb.deleteFrom('jobs').where('service_id', '=', serviceId).where('id', '=', id).returningAll())
    .with('v', (qb) => qb.insertInto('job_versions').columns(ENTRY_COLUMNS).expression(entryOf('d', stamp)))
    .selectFrom('d')
    .selectAll()
    .executeTakeFirst() as Promise<JobRow | undefined>;
}

/** Takes back an entry whose change was taken back (a run now that Redis refused). */
export async function deleteVersion(db: Kysely<Database>, id: string): Promise<void> {
  await db.deleteFrom('job_versions').where('id', '=', id).execute();
}

/** A job's history, newest first, by keyset; readable after the job is deleted. */
export async function listVersions(
  db: Kysely<Database>,
  serviceId: string,
  jobId: string,
  filter: { limit: number; afterId?: string | undefined },
): Promise<Page<JobVersionRow>> {
  let query = db.selectFrom('job_versions').selectAll().where('service_id', '=', serviceId).where('job_id', '=', jobId);
  if (filter.afterId) query = query.where('id', '<', filter.afterId);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(filter.limit + 1)
    .execute();
  return pageOf(rows, filter.limit);
}

/** Whether the service has a history for this job id (its job may be deleted). */
export async function hasVersions(db: Kysely<Database>, serviceId: string, jobId: string): Promise<boolean> {
  const row = await db
    .selectFrom('job_versions')
    .select('id')
    .where('service_id', '=', serviceId)
    .where('job_id', '=', jobId)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** Who asked for the job's latest pause (the actor of a resume at its `until`). */
export async function latestPauseActor(db: Kysely<Database>, jobId: string): Promise<Actor | undefined> {
  const row = await db
    .selectFrom('job_versions')
    .select(['actor_kind', 'actor_id'])
    .where('job_id', '=', jobId)
    .where('change', '=', 'pause')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? { kind: row.actor_kind as Actor['kind'], id: row.actor_id } : undefined;
}

/**
 * Deletes the history of jobs deleted before `cutoff`, `batchSize` jobs at a time, each batch its
 * own statement. A live job's history is kept. Returns how many entries were deleted.
 */
export async function pruneVersions(
  db: Kysely<Database>,
  cutoff: Date,
  options: { batchSize?: number; maxBatches?: number } = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 1_000;
  let total = 0;
  for (let batch = 0; batch < (options.maxBatches ?? 10_000); batch++) {
    const { rows } = await sql<{ jobs: number; entries: number }>`
      with gone as (
        select job_id from job_versions where change = 'delete' and changed_at < ${cutoff} limit ${batchSize}
      ), d as (
        delete from job_versions where job_id in (select job_id from gone) returning 1
      )
      select (select count(*) from gone)::int as jobs, (select count(*) from d)::int as entries`.execute(db);
    const row = rows[0] ?? { jobs: 0, entries: 0 };
    total += row.entries;
    if (row.jobs < batchSize) break;
  }
  return total;
}

/** Sets (or, with null, ends) the job's skip; the caller holds the row lock. */
export async function setSkipUntil(db: Kysely<Database>, id: string, skipUntil: Date | null): Promise<JobRow> {
  return db
    .updateTable('jobs')
    .set({ skip_until: skipUntil })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Ids of paused jobs whose `paused_until` has come (the partial index `jobs_paused_until`). */
export async function pausesDue(db: Kysely<Database>, now: Date, limit: number): Promise<string[]> {
  const rows = await db
    .selectFrom('jobs')
    .select('id')
    .where('state', '=', 'paused')
    .where('paused_until', 'is not', null)
    .where('paused_until', '<=', now)
    .orderBy('paused_until')
    .limit(limit)
    .execute();
  return rows.map((row) => row.id);
}

/**
 * A paused job whose pause has come to its end, locked for the caller's transaction; undefined
 * when it is not (any more), or another transaction holds it (SKIP LOCKED: that one decides).
 */
export async function lockPauseDue(db: Kysely<Database>, id: string, now: Date): Promise<JobRow | undefined> {
  return db
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', id)
    .where('state', '=', 'paused')
    .where('paused_until', '<=', now)
    .forUpdate()
    .skipLocked()
    .executeTakeFirst();
}
