/**
 * The calendars service tier: a service's exclusion calendars, and the calendars a job or a
 * preview lists, checked to be the service's own. Calendars live in Postgres only: the worker
 * reads a job's calendars when an occurrence fires, so a change needs nothing in Redis.
 */
import type { Kysely } from 'kysely';
import type { JobCache } from '../auth-cache.ts';
import {
  TickworkError,
  calendarErrors,
  exclusionOf,
  normalizeCalendarDays,
  nextRunOf,
  uuidv7,
  validationError,
  type CreateCalendarBody,
  type Exclusion,
  type PatchCalendarBody,
} from '@tickwork/core';
import {
  activeJobsListingCalendar,
  calendarSpecOf,
  jobFromRow,
  WITHOUT_HEADERS,
  setNextRunAts,
  deleteCalendar,
  findCalendar,
  findCalendars,
  isCalendarInUse,
  isUniqueViolation,
  jobsListingCalendar,
  listCalendars,
  insertCalendar,
  updateCalendar,
  type CalendarRow,
  type Database,
  type Page,
} from '@tickwork/db';

const noCalendar = (id: string) => new TickworkError('not_found', `No calendar ${id}.`);

function nameTaken(name: string): TickworkError {
  return new TickworkError('conflict', `A calendar named "${name}" already exists in this service.`, {
    errors: [{ field: 'name', message: 'is already taken' }],
  });
}

/** The 400 of a job or preview that lists calendars the service does not have (unknown or another's alike). */
export function calendarsNotFound(ids: readonly string[], missing: ReadonlySet<string>): TickworkError {
  return validationError(
    ids.flatMap((id, i) =>
      missing.has(id.toLowerCase()) ? [{ field: `calendars.${i}`, message: `no calendar ${id} in this service` }] : [],
    ),
  );
}

/** Jobs whose `nextRunAt` a calendar's change computes again per statement. */
const REFRESH_PAGE = 200;

/** Job ids named in the 409 of a delete refused because jobs list the calendar. */
const IN_USE_SHOWN = 5;

export class CalendarsService {
  readonly #db: Kysely<Database>;
  readonly #readDb: Kysely<Database>;
  readonly #now: () => number;

  /** Job rows kept in process (`auth-cache.ts`): a refreshed `nextRunAt` drops its job's row. */
  readonly #jobCache: Pick<JobCache, 'delete'> | undefined;

  constructor(deps: {
    db: Kysely<Database>;
    readDb: Kysely<Database>;
    clock?: () => number;
    jobCache?: Pick<JobCache, 'delete'> | undefined;
  }) {
    this.#jobCache = deps.jobCache;
    this.#db = deps.db;
    this.#readDb = deps.readDb;
    this.#now = deps.clock ?? Date.now;
  }

  async create(serviceId: string, body: CreateCalendarBody): Promise<CalendarRow> {
    const timezone = body.timezone ?? 'UTC';
    const errors = calendarErrors({ ...body, timezone });
    if (errors.length > 0) throw validationError(errors);
    const now = this.#now();
    try {
      return await insertCalendar(this.#db, {
        id: uuidv7(now),
        serviceId,
        name: body.name,
        timezone,
        ...normalizeCalendarDays({ dates: body.dates ?? [], ranges: body.ranges ?? [] }),
        now: new Date(now),
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw nameTaken(body.name);
      throw error;
    }
  }

  async get(serviceId: string, id: string): Promise<CalendarRow> {
    const row = await findCalendar(this.#readDb, serviceId, id);
    if (!row) throw noCalendar(id);
    return row;
  }

  list(serviceId: string, filter: { limit: number; afterId?: string | undefined }): Promise<Page<CalendarRow>> {
    return listCalendars(this.#readDb, serviceId, filter);
  }

  /** Fields sent replace the stored ones (`dates` and `ranges` whole). Jobs see the change at their next occurrence. */
  async patch(serviceId: string, id: string, patch: PatchCalendarBody): Promise<CalendarRow> {
    const current = await findCalendar(this.#db, serviceId, id);
    if (!current) throw noCalendar(id);
    const next = {
      name: patch.name ?? current.name,
      timezone: patch.timezone ?? current.timezone,
      dates: patch.dates ?? current.dates,
      ranges: patch.ranges ?? current.ranges,
    };
    const errors = calendarErrors(patch);
    if (errors.length > 0) throw validationError(errors);
    try {
      const row = await updateCalendar(this.#db, serviceId, id, {
        name: next.name,
        timezone: next.timezone,
        ...normalizeCalendarDays(next),
        now: new Date(this.#now()),
      });
      if (!row) throw noCalendar(id);
      await this.#refreshNextRuns(serviceId, id);
      return row;
    } catch (error) {
      if (isUniqueViolation(error)) throw nameTaken(next.name);
      throw error;
    }
  }

  /**
   * After a calendar's change, the `nextRunAt` of each active job that lists it, computed again
   * with its calendars as they are now, a page at a time. What decides an occurrence is the
   * worker's read at fire time; this keeps what a job shows in step with it.
   */
  async #refreshNextRuns(serviceId: string, id: string): Promise<void> {
    let afterId: string | undefined;
    for (;;) {
      const rows = await activeJobsListingCalendar(this.#db, serviceId, id, { limit: REFRESH_PAGE, afterId });
      if (rows.length === 0) return;
      const ids = [...new Set(rows.flatMap((r) => r.calendar_ids))];
      const specs = new Map((await findCalendars(this.#db, serviceId, ids)).map((c) => [c.id, calendarSpecOf(c)]));
      const now = this.#now();
      await setNextRunAts(
        this.#db,
        rows.map((row) => {
          const job = jobFromRow(row, WITHOUT_HEADERS);
          const exclusion = exclusionOf(row.calendar_ids.flatMap((c) => specs.get(c) ?? []));
          let next: number | null;
          try {
            next = nextRunOf(job, now, row.run_count, exclusion);
          } catch {
            // An instant that cannot be computed: leave what the job shows; the worker reports it.
            next = row.next_run_at?.getTime() ?? null;
          }
          return { id: row.id, version: row.version, nextRunAt: next === null ? null : new Date(next) };
        }),
      );
      // Other instances hear of it from the statement's notifications; this one reads its own write.
      for (const row of rows) this.#jobCache?.delete(row.id);
      if (rows.length < REFRESH_PAGE) return;
      afterId = rows.at(-1)?.id;
    }
  }

  /** Deletes a calendar no job lists; one that a job lists is refused (409, naming some of them). */
  async delete(serviceId: string, id: string): Promise<void> {
    let deleted: boolean;
    try {
      deleted = await deleteCalendar(this.#db, serviceId, id);
    } catch (error) {
      if (!isCalendarInUse(error)) throw error;
      const jobs = await jobsListingCalendar(this.#db, serviceId, id, IN_USE_SHOWN);
      const named = `${jobs.join(', ')}${jobs.length === IN_USE_SHOWN ? ', …' : ''}`;
      throw new TickworkError('conflict', `Jobs list this calendar (${named}); remove it from their calendars first.`);
    }
    if (!deleted) throw noCalendar(id);
  }

  /**
   * The calendars a job or a preview lists, compiled, after checking each is the service's own
   * (400 naming `calendars.<i>` otherwise). `db` is where to read: the primary for a write.
   */
  async exclusionFor(
    serviceId: string,
    ids: readonly string[] | undefined,
    db: Kysely<Database> = this.#db,
  ): Promise<Exclusion> {
    if (!ids || ids.length === 0) return exclusionOf([]);
    const rows = await findCalendars(db, serviceId, ids);
    const found = new Set(rows.map((r) => r.id.toLowerCase()));
    const missing = new Set(ids.map((id) => id.toLowerCase()).filter((id) => !found.has(id)));
    if (missing.size > 0) throw calendarsNotFound(ids, missing);
    return exclusionOf(rows.map(calendarSpecOf));
  }
}
