/** Exclusion calendars of a service (migration 0030), and the calendars a job honours. */
import { sql, type Kysely } from 'kysely';
import type { CalendarSpec } from '@tickwork/core';
import type { CalendarRow, Database, JobRow } from '../types.ts';
import { fieldsOf, SQLSTATE } from '../errors.ts';
import { pageOf, type Page } from './cursor.ts';

/** A calendar row as the time maths reads it. */
export const calendarSpecOf = (row: Pick<CalendarRow, 'timezone' | 'dates' | 'ranges'>): CalendarSpec => ({
  timezone: row.timezone,
  dates: row.dates,
  ranges: row.ranges,
});

export interface NewCalendar {
  id: string;
  serviceId: string;
  name: string;
  timezone: string;
  dates: string[];
  ranges: Array<{ from: string; to: string }>;
  now: Date;
}

export async function insertCalendar(db: Kysely<Database>, calendar: NewCalendar): Promise<CalendarRow> {
  return db
    .insertInto('calendars')
    .values({
      id: calendar.id,
      service_id: calendar.serviceId,
      name: calendar.name,
      timezone: calendar.timezone,
      dates: calendar.dates,
      ranges: JSON.stringify(calendar.ranges),
      created_at: calendar.now,
      updated_at: calendar.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findCalendar(
  db: Kysely<Database>,
  serviceId: string,
  id: string,
): Promise<CalendarRow | undefined> {
  return db
    .selectFrom('calendars')
    .selectAll()
    .where('service_id', '=', serviceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

/** The service's calendars among `ids` (others' and unknown ones are simply not found). */
export async function findCalendars(
  db: Kysely<Database>,
  serviceId: string,
  ids: readonly string[],
): Promise<CalendarRow[]> {
  if (ids.length === 0) return [];
  return db
    .selectFrom('calendars')
    .selectAll()
    .where('service_id', '=', serviceId)
    .where('id', 'in', [...ids])
    .execute();
}

/** A service's calendars, newest first, by keyset on the (time-ordered) id. */
export async function listCalendars(
  db: Kysely<Database>,
  serviceId: string,
  filter: { limit: number; afterId?: string | undefined },
): Promise<Page<CalendarRow>> {
  let query = db.selectFrom('calendars').selectAll().where('service_id', '=', serviceId);
  if (filter.afterId) query = query.where('id', '<', filter.afterId);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(filter.limit + 1)
    .execute();
  return pageOf(rows, filter.limit);
}

export async function updateCalendar(
  db: Kysely<Database>,
  serviceId: string,
  id: string,
  change: { name: string; timezone: string; dates: string[]; ranges: Array<{ from: string; to: string }>; now: Date },
): Promise<CalendarRow | undefined> {
  return db
    .updateTable('calendars')
    .set({
      name: change.name,
      timezone: change.timezone,
      dates: change.dates,
      ranges: JSON.stringify(change.ranges),
      updated_at: change.now,
    })
    .where('service_id', '=', serviceId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** Deletes a calendar; a job that lists it makes the delete fail ({@link isCalendarInUse}). */
export async function deleteCalendar(db: Kysely<Database>, serviceId: string, id: string): Promise<boolean> {
  const result = await db
    .deleteFrom('calendars')
    .where('service_id', '=', serviceId)
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Up to `limit` ids of the service's jobs that list the calendar. */
export async function jobsListingCalendar(
  db: Kysely<Database>,
  serviceId: string,
  id: string,
  limit: number,
): Promise<string[]> {
  const rows = await db
    .selectFrom('jobs')
    .select('id')
    .where('service_id', '=', serviceId)
    .where(sql<boolean>`calendar_ids @> array[${id}]::uuid[] and calendar_ids <> '{}'`)
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => r.id);
}

/** A calendar's delete refused: a job lists it (trigger `calendars_in_use`). */
export function isCalendarInUse(error: unknown): boolean {
  const { code, constraint } = fieldsOf(error);
  return code === SQLSTATE.foreignKeyViolation && constraint === 'calendars_in_use';
}

/** A job's write refused: it lists a calendar its service does not have (trigger `jobs_calendar_ids_exist`). */
export function isMissingCalendar(error: unknown): boolean {
  const { code, constraint } = fieldsOf(error);
  return code === SQLSTATE.foreignKeyViolation && constraint === 'jobs_calendar_ids_exist';
}

/** A page of the service's active jobs that list the calendar, in id order. */
export async function activeJobsListingCalendar(
  db: Kysely<Database>,
  serviceId: string,
  id: string,
  page: { limit: number; afterId?: string | undefined },
): Promise<JobRow[]> {
  let query = db
    .selectFrom('jobs')
    .selectAll()
    .where('service_id', '=', serviceId)
    .where('state', '=', 'active')
    .where(sql<boolean>`calendar_ids @> array[${id}]::uuid[] and calendar_ids <> '{}'`);
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query.orderBy('id').limit(page.limit).execute();
}

/**
 * Writes each job's `next_run_at`, where the job is still active at the version it was computed
 * for, and tells every api instance's job cache (`NOTIFY tickwork_cache`, see migration 0061):
 * the version stays, so the trigger of 0061 sends nothing for this change.
 */
export async function setNextRunAts(
  db: Kysely<Database>,
  jobs: ReadonlyArray<{ id: string; version: number; nextRunAt: Date | null }>,
): Promise<void> {
  if (jobs.length === 0) return;
  await sql`
    with changed as (
      update jobs set next_run_at = v.next_run_at
      from unnest(${jobs.map((j) => j.id)}::uuid[], ${jobs.map((j) => j.version)}::integer[],
        ${jobs.map((j) => j.nextRunAt)}::timestamptz[]) as v(id, version, next_run_at)
      where jobs.id = v.id and jobs.version = v.version and jobs.state = 'active'
      returning jobs.id
    )
    select pg_notify('tickwork_cache', 'j:' || id) from changed
  `.execute(db);
}
