/**
 * The cron maths against references it shares no code with (fast-check, random expressions):
 * (a) a second engine, cron-parser, in zones without DST, where it is right; and (b) a brute-force
 * oracle that walks the wall clock and applies the documented DST rules (test/cron-oracle.ts), in
 * zones whose clocks move by 30 minutes (Lord Howe), at a 45-minute offset (Chatham), in the
 * southern hemisphere (Sydney, Santiago at midnight, Auckland) and the northern (Berlin, New York),
 * in windows around every change of several years.
 */
import fc from 'fast-check';
import { CronExpressionParser } from 'cron-parser';
import { describe, expect, it } from 'vitest';
import { cronError, nextOccurrences } from './schedule.ts';
import { offsetChanges, oracleOccurrences } from '../test/cron-oracle.ts';

const HOUR = 3_600_000;
const iso = (ms: number[]) => ms.map((m) => new Date(m).toISOString());
const instantsOf = (cron: string, timezone: string, afterMs: number, untilMs: number) =>
  nextOccurrences({ kind: 'cron', cron, timezone }, { anchorMs: 0, endAt: untilMs }, afterMs, 100_000);

const pick = (values: string[]) => fc.constantFrom(...values);

/** Day fields both references read alike. */
const dayOfMonth = fc.oneof(
  { weight: 6, arbitrary: fc.constant('*') },
  { weight: 4, arbitrary: pick(['?', 'L', '1', '15', '31', '1-7', '*/2', '10-20/5', '1,15']) },
);
const month = fc.oneof(
  { weight: 6, arbitrary: fc.constant('*') },
  { weight: 3, arbitrary: pick(['1-6', '3,4,9,10', '*/3', 'JAN-MAR']) },
);
const dayOfWeek = fc.oneof(
  { weight: 6, arbitrary: fc.constant('*') },
  { weight: 4, arbitrary: pick(['?', '0', '1-5', '6', '7', '5L', '0#1', 'SUN', 'MON-FRI', '1,3,5']) },
);
const hour = pick(['*', '*', '*/2', '*/3', '0', '1', '2', '3', '1-3', '1,2', '23', '2-4/2', '0-23/4', '*/5']);
const minute = pick(['0', '15', '30', '45', '*/15', '*/20', '0,30', '5-10', '*/7', '59']);

const fiveFields = fc.tuple(minute, hour, dayOfMonth, month, dayOfWeek).map((f) => f.join(' '));
const sixFields = fc
  .tuple(pick(['0', '30', '*/20', '15,45']), minute, hour, dayOfMonth, month, dayOfWeek)
  .map((f) => f.join(' '));
/** Only the oracle reads the extensions cron-parser lacks (W, LW, #L) and the nicknames. */
const withExtensions = fc.oneof(
  { weight: 6, arbitrary: fiveFields },
  {
    weight: 2,
    arbitrary: fc
      .tuple(minute, hour, pick(['15W', 'LW', '1W', 'L']), month, pick(['*', '5#L', 'FRI#L', '1#2']))
      .map((f) => f.join(' ')),
  },
  { weight: 1, arbitrary: pick(['@hourly', '@daily', '@weekly', '@monthly', '@yearly', '@midnight']) },
);

describe('against cron-parser, in zones without DST', () => {
  it('names the same instants, strictly after any instant of 2025-2031', () => {
    const zones = ['UTC', 'Asia/Kolkata', 'Asia/Kathmandu', 'Asia/Tokyo', 'Africa/Lagos'];
    const start = fc.integer({ min: Date.parse('2025-01-01T00:00:00Z'), max: Date.parse('2031-01-01T00:00:00Z') });
    fc.assert(
      fc.property(fc.oneof(fiveFields, sixFields), fc.constantFrom(...zones), start, (cron, timezone, from) => {
        expect(cronError(cron)).toBeUndefined();
        const ours = nextOccurrences({ kind: 'cron', cron, timezone }, { anchorMs: 0 }, from, 25);
        const theirs = CronExpressionParser.parse(cron, { tz: timezone, currentDate: new Date(from) });
        expect(iso(ours)).toEqual(iso(ours.map(() => theirs.next().getTime())));
      }),
      { numRuns: 150 },
    );
  });
});

describe('against the documented DST rules (a brute-force oracle), around every change of 2025-2030', () => {
  const zones = [
    'Australia/Lord_Howe',
    'Pacific/Chatham',
    'Australia/Sydney',
    'America/Santiago',
    'Pacific/Auckland',
    'Europe/Berlin',
    'America/New_York',
  ];
  const changes = zones.flatMap((timeZone) =>
    offsetChanges(timeZone, Date.parse('2025-01-01T00:00:00Z'), Date.parse('2031-01-01T00:00:00Z')).map((at) => ({
      timeZone,
      at,
    })),
  );

  it('finds every change of every zone (two a year)', () => {
    for (const zone of zones) expect(changes.filter((c) => c.timeZone === zone)).toHaveLength(12);
  });

  it('5 fields: the same instants as the oracle within a day and a half of a change', () => {
    fc.assert(
      fc.property(
        withExtensions,
        fc.constantFrom(...changes),
        fc.integer({ min: -12, max: 12 }),
        (cron, change, shiftH) => {
          expect(cronError(cron)).toBeUndefined();
          const from = change.at + shiftH * HOUR - 18 * HOUR;
          const until = from + 36 * HOUR;
          expect(iso(instantsOf(cron, change.timeZone, from, until))).toEqual(
            iso(oracleOccurrences(cron, change.timeZone, from, until)),
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it('6 fields: the same instants as the oracle within an hour and a half of a change', () => {
    fc.assert(
      fc.property(sixFields, fc.constantFrom(...changes), fc.integer({ min: -60, max: 60 }), (cron, change, shiftM) => {
        const from = change.at + shiftM * 60_000 - 90 * 60_000;
        const until = from + 3 * HOUR;
        expect(iso(instantsOf(cron, change.timeZone, from, until))).toEqual(
          iso(oracleOccurrences(cron, change.timeZone, from, until)),
        );
      }),
      { numRuns: 10 },
    );
  });
});
