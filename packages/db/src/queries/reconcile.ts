import { sql, type Kysely } from 'kysely';
import type { Database, JobRow } from '../types.ts';

/**
 * One page of active jobs in id order, after `afterId` (keyset on the partial index
 * `jobs_active`): the reconciler walks the whole table this way without OFFSET.
 */
export async function activeJobsPage(
  db: Kysely<Database>,
  afterId: string | undefined,
  limit: number,
): Promise<JobRow[]> {
  let query = db.selectFrom('jobs').selectAll().where('state', '=', 'active');
  if (afterId) query = query.where('id', '>', afterId);
  return query.orderBy('id', 'asc').limit(limit).execute();
}

/**
 * Where a page of {@link changedJobsPage} ended: the next page starts after it. `updatedAt` is
 * Postgres's own text of the timestamp, exact to the microsecond (a JS Date would round it to the
 * millisecond, and a keyset on the rounded value would read the same rows again).
 */
export interface ChangedCursor {
  updatedAt: string;
  id: string;
}

/**
 * One page of jobs (any state) that changed at or after `since`, in `(updated_at, id)` order after
 * `after` (keyset on `jobs_updated_at`, migration 0050): the reconciler's steady pass. Returns the
 * rows and the cursor of the page's last one.
 */
export async function changedJobsPage(
  db: Kysely<Database>,
  since: Date,
  after: ChangedCursor | undefined,
  limit: number,
): Promise<{ rows: JobRow[]; next: ChangedCursor | undefined }> {
  let query = db
    .selectFrom('jobs')
    .selectAll()
    .select(sql<string>`updated_at::text`.as('updated_key'))
    .where('updated_at', '>=', since);
  if (after) {
    query = query.where(sql<boolean>`(updated_at, id) > (${after.updatedAt}::timestamptz, ${after.id}::uuid)`);
  }
  const found = await query.orderBy('updated_at', 'asc').orderBy('id', 'asc').limit(limit).execute();
  const last = found.at(-1);
  const rows = found.map(({ updated_key: _, ...row }) => row);
  return { rows, next: last ? { updatedAt: last.updated_key, id: last.id } : undefined };
}

/**
 * Active jobs whose next run is before `before` (the most overdue first), or that have none (a
 * schedule whose next instant could not be computed): where a scheduler that stopped or that
 * Redis lost shows, since a firing job moves its `next_run_at` on with every run. There is no
 * index on `next_run_at` (migration 0050 says why): Postgres filters the active jobs and returns
 * only the overdue ones, at most `limit`.
 */
export async function overdueJobs(db: Kysely<Database>, before: Date, limit: number): Promise<JobRow[]> {
  return db
    .selectFrom('jobs')
    .selectAll()
    .where('state', '=', 'active')
    .where((eb) => eb.or([eb('next_run_at', '<', before), eb('next_run_at', 'is', null)]))
    .orderBy(sql`next_run_at asc nulls first`)
    .limit(limit)
    .execute();
}

/** What the reconciler needs to judge a scheduler whose job it did not meet among the active ones. */
export async function jobStatesOf(
  db: Kysely<Database>,
  ids: string[],
): Promise<Map<string, { version: number; state: string }>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('jobs').select(['id', 'version', 'state']).where('id', 'in', ids).execute();
  return new Map(rows.map((row) => [row.id, { version: row.version, state: row.state }]));
}

/** Marks a run that BullMQ gave up on (e.g. stalled too often) as ended, unless it already ended. */
export async function abandonRun(
  db: Kysely<Database>,
  where: { jobId: string; scheduledFor: Date; trigger: string } | { runId: string },
  error: string,
): Promise<boolean> {
  let query = db
    .updateTable('runs')
    .set({ status: 'dead', error: error.slice(0, 1_000), finished_at: new Date() })
    .where('status', 'in', ['running', 'retrying']);
  query =
    'runId' in where
      ? query.where('id', '=', where.runId)
      : query
          .where('job_id', '=', where.jobId)
          .where('scheduled_for', '=', where.scheduledFor)
          .where('trigger', '=', where.trigger);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** A run still open (running or retrying), with what its BullMQ job id is made of. */
export interface OpenRun {
  id: string;
  jobId: string;
  jobVersion: number;
  scheduledFor: Date;
  /** `schedule`, or `manual`/`replay` (a run the api recorded before handing it to BullMQ). */
  trigger: 'schedule' | 'manual' | 'replay';
  /** The job's schedule, to tell a one-shot (`at`) from a recurring job. */
  schedule: unknown;
}

/**
 * Runs (scheduled, manual or replayed) open since before `createdBefore`. Read per service so each
 * query uses the (service_id, status, id) index: the runs table is large, services are few.
 */
export async function openRuns(db: Kysely<Database>, createdBefore: Date): Promise<OpenRun[]> {
  const services = await db.selectFrom('services').select('id').execute();
  const out: OpenRun[] = [];
  for (const service of services) {
    const rows = await db
      .selectFrom('runs')
      .innerJoin('jobs', 'jobs.id', 'runs.job_id')
      .select(['runs.id', 'runs.job_id', 'runs.job_version', 'runs.scheduled_for', 'runs.trigger', 'jobs.schedule'])
      .where('runs.service_id', '=', service.id)
      .where('runs.status', 'in', ['running', 'retrying'])
      .where('runs.created_at', '<', createdBefore)
      .execute();
    for (const row of rows) {
      out.push({
        id: row.id,
        jobId: row.job_id,
        jobVersion: row.job_version,
        scheduledFor: row.scheduled_for,
        trigger: row.trigger as OpenRun['trigger'],
        schedule: row.schedule,
      });
    }
  }
  return out;
}
