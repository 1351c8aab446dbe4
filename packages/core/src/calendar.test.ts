/**
 * Exclusion calendars: the checks of a calendar, the local day an instant falls on, and the coming
 * occurrences with excluded days left out, against a brute-force oracle that shares no code with
 * them (every occurrence, each day read with `toLocaleDateString`), in zones whose days start at
 * odd offsets or skip their midnight (Santiago), on both sides of the date line.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  calendarErrors,
  dayNumberOf,
  exclusionOf,
  localDateOf,
  nextIncludedOccurrence,
  nextMarkedOccurrences,
  normalizeCalendarDays,
  type CalendarSpec,
} from './calendar.ts';
import { nextOccurrences, type NormalizedSchedule } from './schedule.ts';

const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
/** The oracle's local date: another formatter, another code path. */
const oracleDate = (ms: number, timeZone: string) => new Date(ms).toLocaleDateString('en-CA', { timeZone });

describe('calendarErrors', () => {
  it('accepts real dates and ordered ranges in a known zone', () => {
    expect(
      calendarErrors({
        name: 'x',
        timezone: 'Europe/Berlin',
        dates: ['2024-02-29', '2026-12-25'],
        ranges: [{ from: '2026-12-24', to: '2026-12-24' }],
      }),
    ).toEqual([]);
  });

  it('names each field at fault', () => {
    const errors = calendarErrors({
      name: 'x',
      timezone: 'Mars/Olympus',
      dates: ['2026-12-25', '2026-02-29', '2026-13-01', '1899-12-31'],
      ranges: [
        { from: '2026-12-31', to: '2026-12-01' },
        { from: '2026-04-31', to: '2026-05-01' },
      ],
    });
    expect(errors.map((e) => e.field)).toEqual([
      'timezone',
      'dates.1',
      'dates.2',
      'dates.3',
      'ranges.0.to',
      'ranges.1.from',
    ]);
    expect(errors[0]!.message).toContain('Mars/Olympus');
    expect(errors[4]!.message).toBe('must not be before from');
  });

  it('reads dates as days since the epoch', () => {
    expect(dayNumberOf('1970-01-01')).toBe(0);
    expect(dayNumberOf('2026-12-25')).toBe(Date.UTC(2026, 11, 25) / DAY);
    expect(dayNumberOf('2026-2-1')).toBeUndefined();
  });

  it('stores dates sorted and once, ranges sorted', () => {
    expect(
      normalizeCalendarDays({
        dates: ['2026-12-26', '2026-12-25', '2026-12-26'],
        ranges: [
          { from: '2027-01-02', to: '2027-01-03' },
          { from: '2026-01-01', to: '2026-01-05' },
        ],
      }),
    ).toEqual({
      dates: ['2026-12-25', '2026-12-26'],
      ranges: [
        { from: '2026-01-01', to: '2026-01-05' },
        { from: '2027-01-02', to: '2027-01-03' },
      ],
    });
  });
});

describe('exclusion', () => {
  const christmas: CalendarSpec = { timezone: 'Europe/Berlin', dates: ['2026-12-25'], ranges: [] };

  it('reads the day on the calendar’s own wall clock', () => {
    const exclusion = exclusionOf([christmas]);
    // 23:30 UTC on the 24th is 00:30 on the 25th in Berlin; 23:30 UTC on the 25th is the 26th there.
    expect(exclusion.excludes(Date.parse('2026-12-24T23:30:00Z'))).toBe(true);
    expect(exclusion.excludes(Date.parse('2026-12-24T22:59:59.999Z'))).toBe(false);
    expect(exclusion.excludes(Date.parse('2026-12-25T22:59:59.999Z'))).toBe(true);
    expect(exclusion.excludes(Date.parse('2026-12-25T23:00:00Z'))).toBe(false);
    expect(exclusion.excludedUntil(Date.parse('2026-12-25T12:00:00Z'))).toBe(Date.parse('2026-12-25T23:00:00Z'));
  });

  it('excludes when any calendar does, each in its zone', () => {
    const auckland: CalendarSpec = { timezone: 'Pacific/Auckland', dates: ['2026-12-27'], ranges: [] };
    const exclusion = exclusionOf([christmas, auckland]);
    // 2026-12-26T12:00Z is the 27th, 01:00, in Auckland (UTC+13 in summer).
    expect(exclusion.excludes(Date.parse('2026-12-26T12:00:00Z'))).toBe(true);
    expect(exclusion.excludes(Date.parse('2026-12-26T10:00:00Z'))).toBe(false);
    expect(localDateOf(Date.parse('2026-12-26T12:00:00Z'), 'Pacific/Auckland')).toBe('2026-12-27');
  });

  it('of no calendar, or of empty ones, excludes nothing', () => {
    expect(exclusionOf([]).empty).toBe(true);
    expect(exclusionOf([{ timezone: 'UTC', dates: [], ranges: [] }]).excludes(0)).toBe(false);
  });

  it('jumps a year-long range of a one-second interval in few steps', () => {
    const schedule: NormalizedSchedule = { kind: 'every', everyMs: 1_000 };
    const start = Date.parse('2026-01-01T06:00:00Z');
    const exclusion = exclusionOf([
      { timezone: 'America/New_York', dates: [], ranges: [{ from: '2026-01-01', to: '2026-12-31' }] },
    ]);
    const began = performance.now();
    const next = nextIncludedOccurrence(schedule, { anchorMs: start, startAt: start }, start, exclusion);
    expect(performance.now() - began).toBeLessThan(200);
    // New York's 2027-01-01 begins at 05:00 UTC.
    expect(iso(next!)).toBe('2027-01-01T05:00:00.000Z');
  });

  it('marks excluded occurrences when asked, and leaves them out otherwise', () => {
    const schedule: NormalizedSchedule = { kind: 'cron', cron: '0 9 * * *', timezone: 'Europe/Berlin' };
    const after = Date.parse('2026-12-23T12:00:00Z');
    const exclusion = exclusionOf([
      { timezone: 'Europe/Berlin', dates: ['2026-12-25'], ranges: [{ from: '2026-12-31', to: '2027-01-01' }] },
    ]);
    const kept = nextMarkedOccurrences(schedule, { anchorMs: 0 }, after, 5, exclusion);
    expect(kept.map((o) => iso(o.at).slice(0, 10))).toEqual([
      '2026-12-24',
      '2026-12-26',
      '2026-12-27',
      '2026-12-28',
      '2026-12-29',
    ]);
    expect(kept.every((o) => !o.excluded)).toBe(true);
    const marked = nextMarkedOccurrences(schedule, { anchorMs: 0 }, after, 3, exclusion, { includeExcluded: true });
    expect(marked.map((o) => [iso(o.at), o.excluded])).toEqual([
      ['2026-12-24T08:00:00.000Z', false],
      ['2026-12-25T08:00:00.000Z', true],
      ['2026-12-26T08:00:00.000Z', false],
    ]);
  });
});

const ZONES = ['UTC', 'Europe/Berlin', 'America/Santiago', 'Pacific/Chatham', 'Pacific/Kiritimati', 'Asia/Kolkata'];
const BASE = Date.parse('2026-09-01T00:00:00Z');

describe('excluded days, against a brute-force oracle', () => {
  it('leaves out exactly the occurrences on an excluded local day', () => {
    const day = fc.integer({ min: 0, max: 22 }).map((d) => new Date(BASE + d * DAY).toISOString().slice(0, 10));
    const calendar = fc.record({
      timezone: fc.constantFrom(...ZONES),
      dates: fc.array(day, { maxLength: 8 }),
      ranges: fc.array(
        fc.tuple(day, fc.integer({ min: 0, max: 4 })).map(([from, span]) => ({
          from,
          to: new Date(Date.parse(from) + span * DAY).toISOString().slice(0, 10),
        })),
        { maxLength: 3 },
      ),
    });
    const schedule = fc.oneof(
      fc.integer({ min: 20, max: 600 }).map((m): NormalizedSchedule => ({ kind: 'every', everyMs: m * 60_000 })),
      fc
        .tuple(fc.constantFrom('0 0 * * *', '30 23 * * *', '15 */5 * * *', '0 9 * * 1-5'), fc.constantFrom(...ZONES))
        .map(([cron, timezone]): NormalizedSchedule => ({ kind: 'cron', cron, timezone })),
    );
    fc.assert(
      fc.property(
        fc.array(calendar, { maxLength: 3 }),
        schedule,
        fc.integer({ min: 0, max: 10 * DAY }),
        (cals, s, offset) => {
          const after = BASE + offset;
          const window = { anchorMs: BASE };
          const endAt = after + 12 * DAY;
          const all = nextOccurrences(s, { ...window, endAt }, after, 100_000);
          const excluded = (ms: number) =>
            cals.some((c) => {
              const date = oracleDate(ms, c.timezone);
              return c.dates.includes(date) || c.ranges.some((r) => r.from <= date && date <= r.to);
            });
          const expected = all.filter((ms) => !excluded(ms)).slice(0, 10);
          const exclusion = exclusionOf(cals);
          const got = nextMarkedOccurrences(s, { ...window, endAt }, after, 10, exclusion).map((o) => o.at);
          expect(got.map(iso)).toEqual(expected.map(iso));
          const marked = nextMarkedOccurrences(s, { ...window, endAt }, after, 10, exclusion, {
            includeExcluded: true,
          });
          expect(marked.map((o) => [iso(o.at), o.excluded])).toEqual(
            all.slice(0, 10).map((ms) => [iso(ms), excluded(ms)]),
          );
        },
      ),
      { numRuns: 100 },
    );
  }, 120_000);
});
