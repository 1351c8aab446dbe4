/**
 * Schedules: the three forms a client writes, their validation, and their time maths. Cron
 * expressions are computed by croner, in the job's time zone; Tickwork's DST rule (docs/scheduling.md,
 * "Time zones and DST") is applied to the instants it proposes in one place, `dstSkip`.
 */
import { Cron, CronPattern } from 'croner';
import { parseDuration } from './duration.ts';
import { TickworkError, type FieldError } from './errors.ts';

/** A schedule as a client writes it: exactly one of cron, every, everyMs or at. */
export type Schedule = { cron: string; timezone?: string } | { every: string } | { everyMs: number } | { at: string };

/** A schedule as it arrives, before its one-of rule is checked. */
export interface ScheduleInput {
  cron?: string | undefined;
  timezone?: string | undefined;
  every?: string | undefined;
  everyMs?: number | undefined;
  at?: string | undefined;
}

/** The schedule reduced to what the time maths needs. */
export type NormalizedSchedule =
  | { kind: 'cron'; cron: string; timezone: string }
  | { kind: 'every'; everyMs: number }
  | { kind: 'at'; at: number };

/** Where a schedule may fire, and the phase of an interval. All epoch ms. */
export interface ScheduleWindow {
  /** The instant an `every` schedule is phased from: `startAt`, else the job's creation. */
  anchorMs: number;
  /** No occurrence before this instant. */
  startAt?: number | undefined;
  /** No occurrence after this instant. */
  endAt?: number | undefined;
}

/** The smallest interval any schedule may have, whatever a service's quota says. */
export const MIN_INTERVAL_MS = 1_000;
const MAX_INTERVAL_MS = 366 * 86_400_000;
const DAY_MS = 86_400_000;

/**
 * The time maths could not compute a cron schedule's next instant. It is never read as "no more
 * occurrences": the api answers it as a 400 naming `schedule.cron`, and the worker keeps the job
 * and its scheduler, counts it (`tickwork_schedule_errors_total`) and retries.
 */
export class ScheduleComputeError extends TickworkError {
  readonly cron: string;
  readonly timezone: string;
  readonly afterMs: number;

  constructor(cron: string, timezone: string, afterMs: number, reason: string, cause?: unknown) {
    const message = `cannot compute its next occurrence after ${new Date(afterMs).toISOString()} in ${timezone}: ${reason}`;
    super('validation_failed', `schedule.cron: ${message}`, {
      errors: [{ field: 'schedule.cron', message }],
      ...(cause === undefined ? {} : { cause }),
    });
    this.name = 'ScheduleComputeError';
    this.cron = cron;
    this.timezone = timezone;
    this.afterMs = afterMs;
  }
}

const scheduleErrorListeners = new Set<(error: ScheduleComputeError) => void>();

/**
 * Hears every next instant BullMQ's repeat strategy could not compute in this process (the worker
 * counts and logs them). Returns the function that stops listening.
 */
export function onScheduleError(listener: (error: ScheduleComputeError) => void): () => void {
  scheduleErrorListeners.add(listener);
  return () => scheduleErrorListeners.delete(listener);
}

/** Tells every {@link onScheduleError} listener; for the repeat strategy, which cannot throw into BullMQ. */
export function reportScheduleError(error: ScheduleComputeError): void {
  for (const listener of scheduleErrorListeners) listener(error);
}

/** Zones already found valid: building a formatter costs ~0.3 ms, and the reconciler asks 100k times. */
const validTimeZones = new Set<string>();

function isValidTimeZone(timeZone: string): boolean {
  if (validTimeZones.has(timeZone)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    validTimeZones.add(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** A cron expression as it is stored and compared: trimmed, one space between fields. */
export const canonicalCron = (expression: string) => expression.trim().replace(/\s+/g, ' ');

/** Validates a schedule and returns it normalised, or the errors found (field paths under `prefix`). */
export function normalizeSchedule(
  schedule: ScheduleInput,
  options: { now: number; prefix?: string },
): { schedule: NormalizedSchedule } | { errors: FieldError[] } {
  const prefix = options.prefix ?? 'schedule';
  const fail = (field: string, message: string) => ({ errors: [{ field: `${prefix}.${field}`, message }] });
  const keys = (['cron', 'every', 'everyMs', 'at'] as const).filter((k) => schedule[k] !== undefined);
  if (keys.length !== 1) {
    return { errors: [{ field: prefix, message: 'must have exactly one of cron, every, everyMs or at' }] };
  }
  if (schedule.cron !== undefined) {
    const timezone = schedule.timezone ?? 'UTC';
    if (!isValidTimeZone(timezone)) return fail('timezone', `unknown time zone "${timezone}"`);
    const cron = canonicalCron(schedule.cron);
    const error = cronError(cron);
    if (error) return fail('cron', error);
    try {
      if (nextCronAfter(cron, timezone, options.now) === undefined) return fail('cron', 'never fires');
    } catch (error) {
      if (error instanceof ScheduleComputeError) return { errors: error.errors ?? [] };
      throw error;
    }
    return { schedule: { kind: 'cron', cron, timezone } };
  }
  if (schedule.timezone !== undefined) return fail('timezone', 'only a cron schedule takes a time zone');
  if (schedule.every !== undefined || schedule.everyMs !== undefined) {
    const field = schedule.every !== undefined ? 'every' : 'everyMs';
    const everyMs = schedule.every !== undefined ? parseDuration(schedule.every) : schedule.everyMs;
    if (everyMs === undefined || !Number.isSafeInteger(everyMs)) {
      return fail(field, 'must be a duration such as "30s", "5m", "1h" or "1d"');
    }
    if (everyMs < MIN_INTERVAL_MS) return fail(field, `must be at least ${MIN_INTERVAL_MS} ms`);
    if (everyMs > MAX_INTERVAL_MS) return fail(field, `must be at most ${MAX_INTERVAL_MS} ms (366 days)`);
    return { schedule: { kind: 'every', everyMs } };
  }
  const atText = schedule.at ?? '';
  const at = Date.parse(atText);
  if (!ISO_INSTANT.test(atText) || Number.isNaN(at)) {
    return fail('at', 'must be an ISO 8601 date-time with a time zone, e.g. 2026-12-01T09:00:00Z');
  }
  if (at <= options.now) return fail('at', 'must be in the future');
  return { schedule: { kind: 'at', at } };
}

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;

/** The nicknames Tickwork accepts (croner expands them: `@daily` is `0 0 * * *`); `@reboot` means nothing here. */
export const CRON_NICKNAMES = [
  '@yearly',
  '@annually',
  '@monthly',
  '@weekly',
  '@daily',
  '@midnight',
  '@hourly',
] as const;

const MONTHS = 'JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC';
const WEEKDAYS = 'SUN|MON|TUE|WED|THU|FRI|SAT';
/** What each field may hold: numbers, `*`, lists, ranges and steps everywhere, and the named extensions. */
const FIELD_SYNTAX: Array<{ name: string; pattern: RegExp; extensions: string }> = [
  { name: 'second', pattern: /^[\d*,/-]+$/, extensions: '' },
  { name: 'minute', pattern: /^[\d*,/-]+$/, extensions: '' },
  { name: 'hour', pattern: /^[\d*,/-]+$/, extensions: '' },
  { name: 'day of month', pattern: /^(?:[\d*,/?LW-])+$/i, extensions: ', ? L W' },
  { name: 'month', pattern: new RegExp(`^(?:[\\d*,/-]|${MONTHS})+$`, 'i'), extensions: ', JAN-DEC' },
  { name: 'day of week', pattern: new RegExp(`^(?:[\\d*,/?L#-]|${WEEKDAYS})+$`, 'i'), extensions: ', ? L # SUN-SAT' },
];

/** Why a cron expression is refused, or undefined when it is good (docs/scheduling.md, "The cron dialect"). */
export function cronError(expression: string): string | undefined {
  const text = canonicalCron(expression);
  if (text.startsWith('@')) {
    if ((CRON_NICKNAMES as readonly string[]).includes(text.toLowerCase())) return undefined;
    return `is not a nickname Tickwork knows: use one of ${CRON_NICKNAMES.join(', ')}`;
  }
  const fields = text.split(' ');
  if (fields.length !== 5 && fields.length !== 6) {
    return `must have 5 fields (minute hour day month weekday) or 6 (with seconds first), not ${fields.length}`;
  }
  const syntax = fields.length === 6 ? FIELD_SYNTAX : FIELD_SYNTAX.slice(1);
  for (const [i, field] of fields.entries()) {
    const { name, pattern, extensions } = syntax[i]!;
    if (pattern.test(field)) continue;
    if (/H/i.test(field)) return `${name} "${field}": H (a hashed value) is not supported; write the value itself`;
    if (field.includes('+')) {
      return `${name} "${field}": + (AND of the day fields) is not supported; the two day fields combine by OR`;
    }
    return `${name} "${field}" may hold only digits and * , - /${extensions}`;
  }
  try {
    new CronPattern(text, 'UTC', { mode: '5-or-6-parts' });
    return undefined;
  } catch (error) {
    return `is not a valid cron expression: ${(error as Error).message.replace(/^CronPattern: /, '')}`;
  }
}

interface CompiledCron {
  engine: Cron;
  /** The expression's fields as croner reads them: `second[s]`, `minute[m]`, `hour[h]` are 1 when named. */
  fields: CronPattern;
  /** The hour field is a wildcard or a step: the one distinction the DST rule makes. */
  everyRealInstant: boolean;
}

/** Parsed expressions by zone and text: parsing costs more than computing one instant. */
const compiledCrons = new Map<string, CompiledCron>();
const MAX_COMPILED = 1_000;

function compile(expression: string, timeZone: string): CompiledCron {
  const key = `${timeZone} ${expression}`;
  const cached = compiledCrons.get(key);
  if (cached) return cached;
  // croner reads a zone through Intl, three times slower than a fixed offset: UTC is one.
  const options = {
    ...(timeZone === 'UTC' ? { utcOffset: 0 } : { timezone: timeZone }),
    mode: '5-or-6-parts',
  } as const;
  const fields = new CronPattern(expression, timeZone, options);
  const parts = fields.pattern.trim().split(/\s+/);
  const hour = parts[parts.length - 4] ?? '*';
  const compiled = {
    engine: new Cron(expression, options),
    fields,
    everyRealInstant: hour === '*' || hour.includes('/'),
  };
  if (compiledCrons.size >= MAX_COMPILED) compiledCrons.delete(compiledCrons.keys().next().value!);
  compiledCrons.set(key, compiled);
  return compiled;
}

/** Enough candidates for any real schedule: each gap or repeated hour costs the search one. */
const MAX_CANDIDATES = 100;

/**
 * The first instant strictly after `afterMs` that the cron expression names in the time zone, or
 * undefined when there is none at all (croner searches to the year 9999). Throws
 * {@link ScheduleComputeError} when the engine cannot answer.
 */
export function nextCronAfter(expression: string, timeZone: string, afterMs: number): number | undefined {
  const fail = (reason: string, cause?: unknown) =>
    new ScheduleComputeError(expression, timeZone, afterMs, reason, cause);
  let cron: CompiledCron;
  try {
    cron = compile(expression, timeZone);
  } catch (error) {
    throw fail((error as Error).message, error);
  }
  let cursor = afterMs;
  for (let candidates = 0; candidates < MAX_CANDIDATES; candidates++) {
    let next: Date | null;
    try {
      next = cron.engine.nextRun(new Date(cursor));
    } catch (error) {
      throw fail((error as Error).message, error);
    }
    if (next === null) return undefined;
    const ms = next.getTime();
    if (!(ms > cursor)) throw fail(`the engine answered ${next.toISOString()}, not a later instant`);
    const resumeAfter = dstSkip(cron, ms, timeZone);
    if (resumeAfter === undefined) return ms;
    cursor = resumeAfter;
  }
  throw fail(`no instant after ${MAX_CANDIDATES} candidates`);
}

/**
 * The DST rule, stated once. An instant the engine proposes fires when
 * 1. its wall-clock time is one the expression names: a time the clocks skip (spring forward) is
 *    skipped that day, never moved (croner moves a fixed time past the gap; that instant reads as
 *    another time), and
 * 2. the hour field is a wildcard or a step, so every real instant that matches fires (both passes
 *    through a repeated hour, as Vixie cron runs its wildcard jobs); or the wall-clock time has
 *    not occurred before: any other hour field names times of day, each of which fires once, on the
 *    first pass through a repeated hour.
 * Returns undefined when the instant fires, else the instant to search on from.
 */
function dstSkip(cron: CompiledCron, ms: number, timeZone: string): number | undefined {
  if (timeZone === 'UTC') return undefined;
  const wall = wallClockMs(ms, timeZone);
  const time = new Date(wall);
  const { hour, minute, second } = cron.fields;
  if (!hour[time.getUTCHours()] || !minute[time.getUTCMinutes()] || !second[time.getUTCSeconds()]) return ms;
  if (cron.everyRealInstant) return undefined;
  const secondPassEnd = secondPassEndOf(ms, wall, timeZone);
  return secondPassEnd === undefined ? undefined : secondPassEnd - 1;
}

/** Longer than any clock change: how far back an instant's previous offset is read. */
const LONGEST_SHIFT_MS = 3 * 3_600_000;

/**
 * When `ms` lies in the second pass through a repeated wall-clock time (the clocks went back), the
 * instant that pass ends; else undefined.
 */
function secondPassEndOf(ms: number, wall: number, timeZone: string): number | undefined {
  const offset = wall - ms;
  const before = ms - LONGEST_SHIFT_MS;
  const shift = wallClockMs(before, timeZone) - before - offset;
  if (shift <= 0 || wallClockMs(ms - shift, timeZone) !== wall) return undefined;
  // The clocks went back by `shift` at some instant in (ms - shift, ms]: find it to the second.
  let lo = ms - shift;
  let hi = ms;
  while (hi - lo > 1_000) {
    const mid = lo + Math.floor((hi - lo) / 2_000) * 1_000;
    if (wallClockMs(mid, timeZone) - mid === offset) hi = mid;
    else lo = mid;
  }
  return hi + shift;
}

const wallClockFormatters = new Map<string, Intl.DateTimeFormat>();

/** The wall-clock reading of an instant in a time zone, written as the epoch ms of that reading in UTC. */
function wallClockMs(ms: number, timeZone: string): number {
  let formatter = wallClockFormatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    wallClockFormatters.set(timeZone, formatter);
  }
  const part: Record<string, number> = {};
  for (const { type, value } of formatter.formatToParts(ms)) part[type] = Number(value);
  const reading = Date.UTC(part.year!, part.month! - 1, part.day!, part.hour!, part.minute!, part.second!);
  return reading + (((ms % 1_000) + 1_000) % 1_000);
}

/**
 * The minimum-interval rule's measure: when the schedule can fire twice within `minMs`, the shortest
 * time between two of its occurrences; else undefined. A cron expression is measured as it is
 * written, on the wall clock (the same times of day on every day it names), so the answer does
 * not depend on the date asked or on DST, which can bring two occurrences closer once a year.
 */
export function firesMoreOftenThan(schedule: NormalizedSchedule, minMs: number): number | undefined {
  switch (schedule.kind) {
    case 'at':
      return undefined;
    case 'every':
      return schedule.everyMs < minMs ? schedule.everyMs : undefined;
    case 'cron': {
      const { fields } = compile(schedule.cron, 'UTC');
      const times: number[] = [];
      for (let h = 0; h < 24; h++) {
        if (!fields.hour[h]) continue;
        for (let m = 0; m < 60; m++) {
          if (!fields.minute[m]) continue;
          for (let s = 0; s < 60; s++) if (fields.second[s]) times.push(((h * 60 + m) * 60 + s) * 1_000);
        }
      }
      let shortest = Number.POSITIVE_INFINITY;
      for (let i = 1; i < times.length; i++) shortest = Math.min(shortest, times[i]! - times[i - 1]!);
      const span = times[times.length - 1]! - times[0]!;
      // From a day's last time to the next named day's first: only worth finding when it can be shorter.
      if (DAY_MS - span < Math.min(shortest, minMs)) {
        shortest = Math.min(shortest, shortestDayGapMs(fields.pattern) - span);
      }
      return shortest < minMs ? shortest : undefined;
    }
  }
}

/** Named days searched for the shortest gap between two of them: years of them for any real pattern. */
const DAY_GAP_SAMPLE = 800;

/** The shortest time between two days the expression's day, month and weekday fields name. */
function shortestDayGapMs(expression: string): number {
  const parts = expression.trim().split(/\s+/);
  const days = new Cron(`0 0 0 ${parts.slice(-3).join(' ')}`, { utcOffset: 0, mode: '6-part' });
  let shortest = Number.POSITIVE_INFINITY;
  let previous = days.nextRun(new Date(Date.UTC(2000, 0, 1) - 1));
  for (let i = 0; previous !== null && i < DAY_GAP_SAMPLE && shortest > DAY_MS; i++) {
    const next = days.nextRun(previous);
    if (next === null) break;
    shortest = Math.min(shortest, next.getTime() - previous.getTime());
    previous = next;
  }
  return shortest;
}

/**
 * The first occurrence strictly after `afterMs` inside the window, or undefined when there is none
 * (a real end: the window closed, a one-shot passed). Interval occurrences are `anchorMs + k * everyMs`;
 * with a `startAt`, `k` starts at 0, otherwise at 1 (an interval job created now first fires one
 * interval from now). Throws {@link ScheduleComputeError} when a cron instant cannot be computed.
 */
export function nextOccurrence(
  schedule: NormalizedSchedule,
  window: ScheduleWindow,
  afterMs: number,
): number | undefined {
  const from = window.startAt !== undefined ? Math.max(afterMs, window.startAt - 1) : afterMs;
  let next: number | undefined;
  switch (schedule.kind) {
    case 'at':
      next = schedule.at > from ? schedule.at : undefined;
      break;
    case 'every': {
      const first = window.startAt !== undefined ? window.anchorMs : window.anchorMs + schedule.everyMs;
      if (first > from) {
        next = first;
      } else {
        const k = Math.floor((from - first) / schedule.everyMs) + 1;
        next = first + k * schedule.everyMs;
      }
      break;
    }
    case 'cron':
      next = nextCronAfter(schedule.cron, schedule.timezone, from);
      break;
  }
  if (next === undefined) return undefined;
  if (window.endAt !== undefined && next > window.endAt) return undefined;
  return next;
}

/** The next `count` occurrences strictly after `afterMs`, in order. */
export function nextOccurrences(
  schedule: NormalizedSchedule,
  window: ScheduleWindow,
  afterMs: number,
  count: number,
): number[] {
  const out: number[] = [];
  let cursor = afterMs;
  while (out.length < count) {
    const next = nextOccurrence(schedule, window, cursor);
    if (next === undefined) break;
    out.push(next);
    cursor = next;
  }
  return out;
}
