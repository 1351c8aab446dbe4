/**
 * Exclusion calendars (holidays), as pure logic: a calendar names whole local days in its own
 * time zone (single `dates` and inclusive `ranges`); an occurrence whose instant falls on one of
 * those days, read on that calendar's wall clock, is excluded. A job may list several calendars:
 * an occurrence is excluded when any of them excludes it. No I/O here: the api and the worker
 * read the calendars from Postgres and hand them in.
 */
import type { FieldError } from './errors.ts';
import { nextOccurrence, type NormalizedSchedule, type ScheduleWindow } from './schedule.ts';

/** A calendar as the time maths needs it. */
export interface CalendarSpec {
  timezone: string;
  /** Whole local days, `YYYY-MM-DD`. */
  dates: readonly string[];
  /** Inclusive spans of whole local days, `from` ≤ `to`, each `YYYY-MM-DD`. */
  ranges: ReadonlyArray<{ from: string; to: string }>;
}

/** A calendar's input before its checks: what `POST /v1/calendars` takes. */
export interface CalendarInput {
  name: string;
  timezone?: string | undefined;
  dates?: readonly string[] | undefined;
  ranges?: ReadonlyArray<{ from: string; to: string }> | undefined;
}

/** Bounds that keep a calendar's checks cheap (also in the JSON schema). */
export const MAX_CALENDAR_DATES = 1_000;
export const MAX_CALENDAR_RANGES = 100;
/** Calendars one job may list. */
export const MAX_JOB_CALENDARS = 10;
const DAY_MS = 86_400_000;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
/** The days a calendar may name: years 1900 to 9999 (days since 1970-01-01). */
const FIRST_DAY = Date.UTC(1900, 0, 1) / DAY_MS;
const LAST_DAY = Date.UTC(9999, 11, 31) / DAY_MS;

/** Days since 1970-01-01 of a `YYYY-MM-DD` date, or undefined when it is not a real date. */
export function dayNumberOf(date: string): number | undefined {
  const match = DATE.exec(date);
  if (!match) return undefined;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const ms = Date.UTC(year, month - 1, day);
  const back = new Date(ms);
  // Date.UTC maps years 0–99 to 1900–1999; the range check below refuses them anyway.
  if (back.getUTCFullYear() !== year || back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day) {
    return undefined;
  }
  return Math.round(ms / DAY_MS);
}

/** The `YYYY-MM-DD` of a day number. */
export const dateOfDayNumber = (day: number) => new Date(day * DAY_MS).toISOString().slice(0, 10);

function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/**
 * What the JSON schema cannot check of a calendar: real dates within years 1900–9999, `from` ≤
 * `to`, a time zone the runtime knows. Field paths as the schema validator writes them (`dates.2`,
 * `ranges.0.to`).
 */
export function calendarErrors(input: Partial<CalendarInput>): FieldError[] {
  const errors: FieldError[] = [];
  if (input.timezone !== undefined && !isValidTimeZone(input.timezone)) {
    errors.push({ field: 'timezone', message: `unknown time zone "${input.timezone}"` });
  }
  const dayOf = (field: string, date: string) => {
    const day = dayNumberOf(date);
    if (day === undefined) errors.push({ field, message: 'must be a real date, YYYY-MM-DD' });
    else if (day < FIRST_DAY || day > LAST_DAY)
      errors.push({ field, message: 'must be within 1900-01-01 and 9999-12-31' });
    return day;
  };
  for (const [i, date] of (input.dates ?? []).entries()) dayOf(`dates.${i}`, date);
  for (const [i, range] of (input.ranges ?? []).entries()) {
    const from = dayOf(`ranges.${i}.from`, range.from);
    const to = dayOf(`ranges.${i}.to`, range.to);
    if (from !== undefined && to !== undefined && from > to) {
      errors.push({ field: `ranges.${i}.to`, message: 'must not be before from' });
    }
  }
  return errors;
}

/** Dates sorted and without repeats, ranges sorted: how a calendar is stored and shown. */
export function normalizeCalendarDays(spec: Pick<CalendarSpec, 'dates' | 'ranges'>): {
  dates: string[];
  ranges: Array<{ from: string; to: string }>;
} {
  const dates = [...new Set(spec.dates)].sort();
  const ranges = spec.ranges
    .map((r) => ({ from: r.from, to: r.to }))
    .sort((a, b) => (a.from === b.from ? a.to.localeCompare(b.to) : a.from.localeCompare(b.from)));
  return { dates, ranges };
}

/** A calendar compiled for lookups: disjoint, sorted, inclusive spans of day numbers. */
interface CompiledCalendar {
  timezone: string;
  spans: Array<[number, number]>;
}

function compileCalendar(calendar: CalendarSpec): CompiledCalendar {
  const raw: Array<[number, number]> = [];
  for (const date of calendar.dates) {
    const day = dayNumberOf(date);
    if (day !== undefined) raw.push([day, day]);
  }
  for (const range of calendar.ranges) {
    const from = dayNumberOf(range.from);
    const to = dayNumberOf(range.to);
    if (from !== undefined && to !== undefined && from <= to) raw.push([from, to]);
  }
  raw.sort((a, b) => a[0] - b[0]);
  const spans: Array<[number, number]> = [];
  for (const span of raw) {
    const last = spans.at(-1);
    // Adjacent days merge too: one span, one jump over it.
    if (last && span[0] <= last[1] + 1) last[1] = Math.max(last[1], span[1]);
    else spans.push([span[0], span[1]]);
  }
  return { timezone: calendar.timezone, spans };
}

/** The span holding `day`, or undefined. */
function spanOf(spans: ReadonlyArray<[number, number]>, day: number): [number, number] | undefined {
  let lo = 0;
  let hi = spans.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const span = spans[mid]!;
    if (day < span[0]) hi = mid - 1;
    else if (day > span[1]) lo = mid + 1;
    else return span;
  }
  return undefined;
}

const dateFormatters = new Map<string, Intl.DateTimeFormat>();

/** The local day (days since 1970-01-01) an instant falls on, read on the zone's wall clock. */
export function localDayNumber(ms: number, timeZone: string): number {
  if (timeZone === 'UTC') return Math.floor(ms / DAY_MS);
  let formatter = dateFormatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric' });
    dateFormatters.set(timeZone, formatter);
  }
  const part: Record<string, number> = {};
  for (const { type, value } of formatter.formatToParts(ms)) part[type] = Number(value);
  return Math.round(Date.UTC(part.year!, part.month! - 1, part.day!) / DAY_MS);
}

/** The local date (`YYYY-MM-DD`) an instant falls on in a time zone. */
export const localDateOf = (ms: number, timeZone: string) => dateOfDayNumber(localDayNumber(ms, timeZone));

/** Offsets lie within −12 h and +14 h: a local day starts within this of its UTC midnight. */
const MAX_OFFSET_MS = 15 * 3_600_000;

/** The first instant at or after `from` whose local day is after `day` (the day's end, exclusive). */
function endOfLocalDay(day: number, timeZone: string, from: number): number {
  let lo = from;
  let hi = Math.max(from + 1, (day + 1) * DAY_MS + MAX_OFFSET_MS);
  if (localDayNumber(lo, timeZone) > day) return lo;
  // Invariant: local day at lo ≤ day < local day at hi.
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (localDayNumber(mid, timeZone) > day) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** A job's calendars, compiled: asks whether an instant is excluded, and where the exclusion ends. */
export interface Exclusion {
  /** Whether any calendar excludes the instant. */
  excludes(ms: number): boolean;
  /**
   * When `ms` is excluded, the first instant after it that no calendar's span holding `ms` covers
   * (a later calendar may still exclude it: ask again); else undefined.
   */
  excludedUntil(ms: number): number | undefined;
  /** No calendar names any day: nothing is ever excluded. */
  readonly empty: boolean;
}

/** Compiles a job's calendars. An exclusion of no calendars excludes nothing. */
export function exclusionOf(calendars: readonly CalendarSpec[]): Exclusion {
  const compiled = calendars.map(compileCalendar).filter((c) => c.spans.length > 0);
  return {
    empty: compiled.length === 0,
    excludes(ms) {
      return compiled.some((c) => spanOf(c.spans, localDayNumber(ms, c.timezone)) !== undefined);
    },
    excludedUntil(ms) {
      let until: number | undefined;
      for (const c of compiled) {
        const span = spanOf(c.spans, localDayNumber(ms, c.timezone));
        if (span === undefined) continue;
        const end = endOfLocalDay(span[1], c.timezone, ms);
        until = until === undefined ? end : Math.max(until, end);
      }
      return until;
    },
  };
}

/** One coming occurrence, and whether the calendars exclude it. */
export interface MarkedOccurrence {
  at: number;
  excluded: boolean;
}

/** Enough jumps over excluded spans for any bounded calendar set (10 calendars of 1,100 spans each). */
const MAX_JUMPS = 20_000;

/**
 * The first occurrence strictly after `afterMs` that no calendar excludes, or undefined when there
 * is none. Excluded days are jumped over whole, so an interval of a second across a year-long range
 * costs one step, not 31 million.
 */
export function nextIncludedOccurrence(
  schedule: NormalizedSchedule,
  window: ScheduleWindow,
  afterMs: number,
  exclusion: Exclusion,
): number | undefined {
  let cursor = afterMs;
  for (let jumps = 0; jumps < MAX_JUMPS; jumps++) {
    const next = nextOccurrence(schedule, window, cursor);
    if (next === undefined || exclusion.empty) return next;
    const until = exclusion.excludedUntil(next);
    if (until === undefined) return next;
    // The next occurrence at or after `until`: strictly after `until - 1`.
    cursor = Math.max(next, until - 1);
  }
  return undefined;
}

/**
 * The coming occurrences strictly after `afterMs`, in order. Without `includeExcluded`: the next
 * `count` that no calendar excludes. With it: the next `count` occurrences of the schedule, each
 * marked whether a calendar excludes it.
 */
export function nextMarkedOccurrences(
  schedule: NormalizedSchedule,
  window: ScheduleWindow,
  afterMs: number,
  count: number,
  exclusion: Exclusion,
  options: { includeExcluded?: boolean } = {},
): MarkedOccurrence[] {
  const out: MarkedOccurrence[] = [];
  let cursor = afterMs;
  while (out.length < count) {
    const next = options.includeExcluded
      ? nextOccurrence(schedule, window, cursor)
      : nextIncludedOccurrence(schedule, window, cursor, exclusion);
    if (next === undefined) break;
    out.push({ at: next, excluded: options.includeExcluded === true && exclusion.excludes(next) });
    cursor = next;
  }
  return out;
}
