import { CronExpressionParser, type CronExpression } from 'cron-parser';
import { parseDuration } from './duration.ts';
import type { FieldError } from './errors.ts';

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

/** Zones already found valid: building a formatter costs ~0.3 ms, and the reconciler asks 100k times. */
const validTimeZones = new Set<string>();

export function isValidTimeZone(timeZone: string): boolean {
  if (validTimeZones.has(timeZone)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    validTimeZones.add(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** Validates a schedule and returns it normalised, or the errors found (field paths under `prefix`). */
export function normalizeSchedule(
  schedule: ScheduleInput,
  options: { now: number; minIntervalMs?: number; prefix?: string },
): { schedule: NormalizedSchedule } | { errors: FieldError[] } {
  const prefix = options.prefix ?? 'schedule';
  const minIntervalMs = Math.max(options.minIntervalMs ?? MIN_INTERVAL_MS, MIN_INTERVAL_MS);
  const fail = (field: string, message: string) => ({ errors: [{ field: `${prefix}.${field}`, message }] });
  const keys = (['cron', 'every', 'everyMs', 'at'] as const).filter((k) => schedule[k] !== undefined);
  if (keys.length !== 1) {
    return { errors: [{ field: prefix, message: 'must have exactly one of cron, every, everyMs or at' }] };
  }
  if (schedule.cron !== undefined) {
    const timezone = schedule.timezone ?? 'UTC';
    if (!isValidTimeZone(timezone)) return fail('timezone', `unknown time zone "${timezone}"`);
    const error = cronError(schedule.cron);
    if (error) return fail('cron', error);
    const first = nextCronAfter(schedule.cron, timezone, options.now);
    const second = first === undefined ? undefined : nextCronAfter(schedule.cron, timezone, first);
    if (first === undefined) return fail('cron', 'never fires');
    if (second !== undefined && second - first < minIntervalMs && minIntervalMs > MIN_INTERVAL_MS) {
      return fail('cron', `fires more often than the minimum interval of ${minIntervalMs} ms`);
    }
    return { schedule: { kind: 'cron', cron: schedule.cron.trim().replace(/\s+/g, ' '), timezone } };
  }
  if (schedule.timezone !== undefined) return fail('timezone', 'only a cron schedule takes a time zone');
  if (schedule.every !== undefined || schedule.everyMs !== undefined) {
    const field = schedule.every !== undefined ? 'every' : 'everyMs';
    const everyMs = schedule.every !== undefined ? parseDuration(schedule.every) : schedule.everyMs;
    if (everyMs === undefined || !Number.isSafeInteger(everyMs)) {
      return fail(field, 'must be a duration such as "30s", "5m", "1h" or "1d"');
    }
    if (everyMs < minIntervalMs) return fail(field, `must be at least ${minIntervalMs} ms`);
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

/** Why a cron expression is refused, or undefined when it is good. */
export function cronError(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    return `must have 5 fields (minute hour day month weekday) or 6 (with seconds first), not ${fields.length}`;
  }
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC', strict: false });
    return undefined;
  } catch (error) {
    return `is not a valid cron expression: ${(error as Error).message}`;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The wall-clock hour, minute and second of an instant in a time zone. */
function wallClock(ms: number, timeZone: string): { hour: number; minute: number; second: number } {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  const parts = formatter.formatToParts(ms);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return { hour: get('hour'), minute: get('minute'), second: get('second') };
}

/** Whether an instant, read on the wall clock of the time zone, matches the cron expression's time fields. */
function matchesTimeFields(cron: CronExpression, ms: number, timeZone: string): boolean {
  const { hour, minute, second } = wallClock(ms, timeZone);
  const fields = cron.fields;
  return (
    (fields.hour.values as number[]).includes(hour) &&
    (fields.minute.values as number[]).includes(minute) &&
    (fields.second.values as number[]).includes(second)
  );
}

/**
 * The first instant strictly after `afterMs` that the cron expression names in the time zone.
 *
 * DST: a wall-clock time that does not exist (the spring-forward gap) is skipped, not moved;
 * a fixed time in the repeated autumn hour fires once (the first time it occurs). Patterns
 * whose hour is a wildcard or step keep firing at every real instant that matches, as Vixie
 * cron and Kubernetes do, so an "every 15 minutes" job does not stop for an hour.
 */
export function nextCronAfter(expression: string, timeZone: string, afterMs: number): number | undefined {
  const cron = CronExpressionParser.parse(expression, { tz: timeZone, currentDate: new Date(afterMs) });
  for (let guard = 0; guard < 1000; guard++) {
    let next: number;
    try {
      next = cron.next().getTime();
    } catch {
      return undefined;
    }
    if (next <= afterMs) continue;
    if (matchesTimeFields(cron, next, timeZone)) return next;
  }
  return undefined;
}

/** The interval of a recurring schedule in ms, if it is an interval. */
export function intervalOf(schedule: NormalizedSchedule): number | undefined {
  return schedule.kind === 'every' ? schedule.everyMs : undefined;
}

/**
 * The first occurrence strictly after `afterMs` inside the window, or undefined when there is none.
 * Interval occurrences are `anchorMs + k * everyMs`; with a `startAt`, `k` starts at 0, otherwise at 1
 * (an interval job created now first fires one interval from now).
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

export function normalizedToSchedule(schedule: NormalizedSchedule): Schedule {
  switch (schedule.kind) {
    case 'cron':
      return { cron: schedule.cron, timezone: schedule.timezone };
    case 'every':
      return { everyMs: schedule.everyMs };
    case 'at':
      return { at: new Date(schedule.at).toISOString() };
  }
}
