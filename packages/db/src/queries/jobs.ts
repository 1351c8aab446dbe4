import { sql, type Kysely } from 'kysely';
import {
  openHeaders,
  sealHeaders,
  type Job,
  type JobSpec,
  type JobState,
  type MisfirePolicy,
  type RetryPolicy,
  type Schedule,
  type SecretKeys,
  type Target,
} from '@tickwork/core';
import type { Database, JobRow } from '../types.ts';
import { pageOf, STAMP_TEXT_SQL, type Page, type Stamped, type StampText } from './cursor.ts';
import { PREPARE } from '../prepared.ts';
import { JOB_COLUMNS } from './job-columns.ts';

/**
 * A target as stored: `target` (jsonb) with the body in it, for readers that predate migration
 * 0004, and `target_body`, the body's bytes as sent; the headers sealed in `target_headers`
 * (migration 0040), `target.headers` left empty.
 */
function targetColumns(
  target: Target,
  keys: SecretKeys,
): { target: string; target_body: string | null; target_headers: string | null } {
  const { bodyText, headers, ...rest } = target;
  return {
    target: JSON.stringify({ ...rest, headers: {} }),
    target_body: rest.body === undefined ? null : (bodyText ?? JSON.stringify(rest.body)),
    target_headers: sealHeaders(headers, keys),
  };
}

/**
 * The target of a row: the body's own bytes when the row has them, else its body from `target`;
 * the headers opened from `target_headers`, else (a row not yet sealed) those in `target`.
 */
function targetOf(row: JobRow, keys: SecretKeys | typeof WITHOUT_HEADERS): Target {
  const stored = row.target as Target;
  const target =
    row.target_headers === null
      ? stored
      : { ...stored, headers: keys === WITHOUT_HEADERS ? {} : openHeaders(row.target_headers, keys) };
  if (row.target_body === null) {
    return target.body === undefined ? target : { ...target, bodyText: JSON.stringify(target.body) };
  }
  return { ...target, body: JSON.parse(row.target_body), bodyText: row.target_body };
}

/**
 * For a reader that only schedules (the reconciler, each active job, each pass): a job without its
 * target's headers, opening nothing. Such a job must never be delivered.
 */
export const WITHOUT_HEADERS = 'without-headers';

/** A stored job; `keys` open its sealed headers (or {@link WITHOUT_HEADERS}). */
export function jobFromRow(row: JobRow, keys: SecretKeys | typeof WITHOUT_HEADERS): Job {
  return {
    id: row.id,
    serviceId: row.service_id,
    name: row.name,
    description: row.description,
    labels: row.labels,
    schedule: row.schedule as Schedule,
    target: targetOf(row, keys),
    startAt: row.start_at?.getTime() ?? null,
    endAt: row.end_at?.getTime() ?? null,
    maxRuns: row.max_runs,
    jitterMs: row.jitter_ms,
    overlap: row.overlap as Job['overlap'],
    misfire: row.misfire as MisfirePolicy,
    retry: row.retry as RetryPolicy,
    // A row read by a statement older than migration 0030 has none.
    calendars: row.calendar_ids ?? [],
    alertAfterMs: row.alert_after_ms,
    state: row.state as JobState,
    version: row.version,
    createdAt: row.created_at.getTime(),
    updatedAt: row.updated_at.getTime(),
  };
}

export type NewJob = JobSpec & { id: string; serviceId: string; state: JobState; now: Date; nextRunAt: Date | null };

/** The row of a new job (version 1), its target's headers sealed under `keys`. */
export function newJobValues(job: NewJob, keys: SecretKeys) {
  return {
    id: job.id,
    service_id: job.serviceId,
    name: job.name,
    description: job.description,
    labels: JSON.stringify(job.labels),
    schedule: JSON.stringify(job.schedule),
    ...targetColumns(job.target, keys),
    start_at: job.startAt === null ? null : new Date(job.startAt),
    end_at: job.endAt === null ? null : new Date(job.endAt),
    max_runs: job.maxRuns,
    jitter_ms: job.jitterMs,
    overlap: job.overlap,
    misfire: JSON.stringify(job.misfire),
    retry: JSON.stringify(job.retry),
    calendar_ids: job.calendars ?? [],
    alert_after_ms: job.alertAfterMs ?? null,
    state: job.state,
    version: 1,
    next_run_at: job.nextRunAt,
    created_at: job.now,
    updated_at: job.now,
  };
}

/** Insert a new job, its target's headers sealed under `keys`. */
export async function insertJob(db: Kysely<Database>, job: NewJob, keys: SecretKeys): Promise<JobRow> {
  return db.insertInto('jobs').values(newJobValues(job, keys)).returningAll().executeTakeFirstOrThrow();
}

/** One job of a service: the api's hottest read, so a named (prepared) statement. */
export async function findJob(db: Kysely<Database>, serviceId: string, id: string): Promise<JobRow | undefined> {
  const { rows } =
    await sql<JobRow>`${sql.raw(PREPARE)} select ${JOB_COLUMNS} from jobs where service_id = ${serviceId} and id = ${id}`.execute(
      db,
    );
  return rows[0];
}

/**
 * A job of the service with its row version (`xmin`, which every update changes), or only that
 * version when it is still `stamp` (the caller holds that row: nothing else is read off the
 * tuple or parsed), or undefined when the service has no such job. Without a stamp, the row.
 */
export async function findJobUnlessStamp(
  db: Kysely<Database>,
  serviceId: string,
  id: string,
  stamp = '',
): Promise<{ stamp: string; row: JobRow | undefined } | undefined> {
  const { rows } = await sql<JobRow & { stamp: string }>`${sql.raw(PREPARE)} select jobs.xmin::text as stamp, j.*
    from jobs left join lateral (select ${JOB_COLUMNS} where jobs.xmin::text <> ${stamp}) j on true
    where jobs.service_id = ${serviceId} and jobs.id = ${id}`.execute(db);
  const found = rows[0];
  if (found === undefined) return undefined;
  if (found.id === null) return { stamp: found.stamp, row: undefined };
  const { stamp: version, ...row } = found;
  return { stamp: version, row: row as JobRow };
}

export async function findJobById(db: Kysely<Database>, id: string): Promise<JobRow | undefined> {
  return db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface JobListFilter {
  limit: number;
  afterId?: string | undefined;
  state?: JobState | undefined;
  labels?: Record<string, string> | undefined;
  namePrefix?: string | undefined;
}

/** A service's jobs, newest first, by keyset on the (time-ordered) id. */
export async function listJobs(db: Kysely<Database>, serviceId: string, filter: JobListFilter): Promise<Page<JobRow>> {
  let query = db.selectFrom('jobs').selectAll().where('service_id', '=', serviceId);
  if (filter.afterId) query = query.where('id', '<', filter.afterId);
  if (filter.state) query = query.where('state', '=', filter.state);
  if (filter.labels && Object.keys(filter.labels).length > 0) {
    query = query.where(sql<boolean>`labels @> ${JSON.stringify(filter.labels)}::jsonb`);
  }
  if (filter.namePrefix) {
    const escaped = filter.namePrefix.replace(/[\\%_]/g, (c) => `\\${c}`);
    query = query.where('name', 'like', `${escaped}%`);
  }
  const rows = await query
    .orderBy('id', 'desc')
    .limit(filter.limit + 1)
    .execute();
  return pageOf(rows, filter.limit);
}

/**
 * A page of {@link listJobs}, its ids and row versions only, as one text ({@link StampText}): what
 * a page served from serialized rows needs ({@link findStampedJobs} reads the rows it has not
 * serialized yet). A named statement per combination of filters (at most 16 texts).
 */
export async function listJobStamps(
  db: Kysely<Database>,
  serviceId: string,
  filter: JobListFilter,
): Promise<StampText> {
  const labels =
    filter.labels && Object.keys(filter.labels).length > 0
      ? sql` and labels @> ${JSON.stringify(filter.labels)}::jsonb`
      : sql``;
  const name = filter.namePrefix
    ? sql` and name like ${`${filter.namePrefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`}`
    : sql``;
  const { rows } = await sql<{ stamps: string }>`${sql.raw(PREPARE)} select ${sql.raw(STAMP_TEXT_SQL)} as stamps
    from (select id, xmin from jobs where service_id = ${serviceId}${
      filter.afterId ? sql` and id < ${filter.afterId}` : sql``
    }${filter.state ? sql` and state = ${filter.state}` : sql``}${labels}${name}
    order by id desc limit ${filter.limit + 1}) page`.execute(db);
  return { text: rows[0]?.stamps ?? '', limit: filter.limit };
}

/** Jobs of a service by id, each with its row version ({@link Stamped}); ids of other services are left out. */
export async function findStampedJobs(
  db: Kysely<Database>,
  serviceId: string,
  ids: readonly string[],
): Promise<Array<JobRow & { stamp: string }>> {
  const { rows } = await sql<JobRow & { stamp: string }>`${sql.raw(PREPARE)} select ${JOB_COLUMNS},
    jobs.xmin::text as stamp from jobs where service_id = ${serviceId} and id = any(${ids}::uuid[])`.execute(db);
  return rows;
}

export async function deleteJob(db: Kysely<Database>, serviceId: string, id: string): Promise<JobRow | undefined> {
  return db
    .deleteFrom('jobs')
    .where('service_id', '=', serviceId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** What the worker needs to fire an occurrence: the job and its service's signing secrets. */
export interface JobForFire {
  job: JobRow;
  service: {
    signingSecret: string;
    previousSigningSecret: string | null;
    previousSecretExpiresAt: Date | null;
    disabled: boolean;
  };
}

function jobForFireQuery(db: Kysely<Database>, id: string) {
  return db
    .selectFrom('jobs')
    .innerJoin('services', 'services.id', 'jobs.service_id')
    .selectAll('jobs')
    .select([
      'services.signing_secret',
      'services.previous_signing_secret',
      'services.previous_secret_expires_at',
      'services.disabled_at',
    ])
    .where('jobs.id', '=', id);
}

export async function findJobForFire(db: Kysely<Database>, id: string): Promise<JobForFire | undefined> {
  return jobForFireOf(await jobForFireQuery(db, id).executeTakeFirst());
}

/**
 * `findJobForFire`, locked, in one statement: the job, locked for the rest of the
 * transaction (its row only, never its service's), with its service's signing secrets.
 */
export async function lockJobForFireWithService(db: Kysely<Database>, id: string): Promise<JobForFire | undefined> {
  return jobForFireOf(await jobForFireQuery(db, id).forUpdate('jobs').executeTakeFirst());
}

export function jobForFireOf(
  row:
    | (JobRow & {
        signing_secret: string;
        previous_signing_secret: string | null;
        previous_secret_expires_at: Date | null;
        disabled_at: Date | null;
      })
    | undefined,
): JobForFire | undefined {
  if (!row) return undefined;
  const { signing_secret, previous_signing_secret, previous_secret_expires_at, disabled_at, ...job } = row;
  return {
    job,
    service: {
      signingSecret: signing_secret,
      previousSigningSecret: previous_signing_secret,
      previousSecretExpiresAt: previous_secret_expires_at,
      disabled: disabled_at !== null,
    },
  };
}

/**
 * A service's job, locked for the rest of the transaction: every change of a job (PATCH, pause,
 * resume) goes through this, so two changes never interleave and the version check is exact.
 */
export async function lockJob(db: Kysely<Database>, serviceId: string, id: string): Promise<JobRow | undefined> {
  return db
    .selectFrom('jobs')
    .selectAll()
    .where('service_id', '=', serviceId)
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
}

/** Writes a changed job as its next version (the caller holds the row lock). */
export async function updateJob(
  db: Kysely<Database>,
  id: string,
  change: {
    state: JobState;
    version: number;
    nextRunAt: Date | null;
    now: Date;
    /** Set (or, with null, cleared) by a pause, a resume; left as it is when undefined. */
    pausedUntil?: Date | null;
  } & ({ spec?: undefined } | { spec: JobSpec /** Seal the new definition's headers. */; keys: SecretKeys }),
): Promise<JobRow> {
  const spec = change.spec;
  return db
    .updateTable('jobs')
    .set({
      ...(spec
        ? {
            name: spec.name,
            description: spec.description,
            labels: JSON.stringify(spec.labels),
            schedule: JSON.stringify(spec.schedule),
            ...targetColumns(spec.target, change.keys),
            start_at: spec.startAt === null ? null : new Date(spec.startAt),
            end_at: spec.endAt === null ? null : new Date(spec.endAt),
            max_runs: spec.maxRuns,
            jitter_ms: spec.jitterMs,
            overlap: spec.overlap,
            misfire: JSON.stringify(spec.misfire),
            retry: JSON.stringify(spec.retry),
            calendar_ids: spec.calendars ?? [],
            alert_after_ms: spec.alertAfterMs ?? null,
          }
        : {}),
      state: change.state,
      version: change.version,
      next_run_at: change.nextRunAt,
      updated_at: change.now,
      ...(change.pausedUntil === undefined ? {} : { paused_until: change.pausedUntil }),
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Marks a job completed (its window ended or it reached maxRuns). */
export async function completeJob(db: Kysely<Database>, id: string, version: number): Promise<void> {
  await db
    .updateTable('jobs')
    .set({ state: 'completed', next_run_at: null })
    .where('id', '=', id)
    .where('version', '=', version)
    .where('state', '=', 'active')
    .execute();
}

/** The names operators recognise jobs by: each job's own and its service's, for the given ids. */
export async function jobNames(
  db: Kysely<Database>,
  ids: readonly string[],
): Promise<Array<{ id: string; name: string; service: string }>> {
  if (ids.length === 0) return [];
  return db
    .selectFrom('jobs')
    .innerJoin('services', 'services.id', 'jobs.service_id')
    .select(['jobs.id as id', 'jobs.name as name', 'services.name as service'])
    .where('jobs.id', 'in', [...ids])
    .execute();
}
