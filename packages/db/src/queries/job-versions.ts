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
import { newJobValues, type NewJob } from './jobs.ts';

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
  return db
    .with('ins', (qb) => qb.insertInto('jobs').values(newJobValues(job, keys)).returningAll())
    .with('v', (qb) => qb.insertInto('job_versions').columns(ENTRY_COLUMNS).expression(entryOf('ins', stamp)))
    .selectFrom('ins')
    .selectAll()
    .executeTakeFirstOrThrow() as Promise<JobRow>;
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
