import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CronExpressionParser } from 'cron-parser';
import { nextCronAfter, nextOccurrences, normalizeSchedule, type NormalizedSchedule } from './schedule.ts';
import { parseDuration } from './duration.ts';

const iso = (ms: number[]) => ms.map((m) => new Date(m).toISOString());
const at = (text: string) => Date.parse(text);

describe('cron with a time zone', () => {
  it('skips a wall-clock time that does not exist (Berlin, spring forward)', () => {
    const cron: NormalizedSchedule = { kind: 'cron', cron: '30 2 * * *', timezone: 'Europe/Berlin' };
    const runs = nextOccurrences(cron, { anchorMs: 0 }, at('2026-03-27T00:00:00Z'), 4);
    // 02:30 does not exist on 29 March 2026 in Berlin: that day has no run.
    expect(iso(runs)).toEqual([
      '2026-03-27T01:30:00.000Z',
      '2026-03-28T01:30:00.000Z',
      '2026-03-30T00:30:00.000Z',
      '2026-03-31T00:30:00.000Z',
    ]);
  });

  it('fires a fixed time in the repeated hour once (Berlin, fall back)', () => {
    const cron: NormalizedSchedule = { kind: 'cron', cron: '30 2 * * *', timezone: 'Europe/Berlin' };
    const runs = nextOccurrences(cron, { anchorMs: 0 }, at('2026-10-24T12:00:00Z'), 2);
    expect(iso(runs)).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });

  it('skips the gap and fires once in the overlap in New York', () => {
    const cron: NormalizedSchedule = { kind: 'cron', cron: '30 2 * * *', timezone: 'America/New_York' };
    const spring = nextOccurrences(cron, { anchorMs: 0 }, at('2026-03-07T12:00:00Z'), 2);
    // 8 March 2026 has no 02:30 in New York.
    expect(iso(spring)).toEqual(['2026-03-09T06:30:00.000Z', '2026-03-10T06:30:00.000Z']);
    const fall = nextOccurrences({ ...cron, cron: '30 1 * * *' }, { anchorMs: 0 }, at('2026-10-31T12:00:00Z'), 2);
    expect(iso(fall)).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  });

  it('keeps an interval-like pattern going through the repeated hour', () => {
    const runs = nextCronAfter('0 * * * *', 'Europe/Berlin', at('2026-10-24T23:30:00Z'));
    expect(new Date(runs!).toISOString()).toBe('2026-10-25T00:00:00.000Z');
    const hourly = nextOccurrences(
      { kind: 'cron', cron: '0 * * * *', timezone: 'Europe/Berlin' },
      { anchorMs: 0 },
      at('2026-10-24T23:30:00Z'),
      3,
    );
    expect(iso(hourly)).toEqual(['2026-10-25T00:00:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T02:00:00.000Z']);
  });

  it('handles month ends and leap days', () => {
    const leap = nextOccurrences(
      { kind: 'cron', cron: '0 0 29 2 *', timezone: 'UTC' },
      { anchorMs: 0 },
      at('2026-01-01T00:00:00Z'),
      2,
    );
    expect(iso(leap)).toEqual(['2028-02-29T00:00:00.000Z', '2032-02-29T00:00:00.000Z']);
    const monthEnd = nextOccurrences(
      { kind: 'cron', cron: '0 12 31 * *', timezone: 'UTC' },
      { anchorMs: 0 },
      at('2026-01-31T13:00:00Z'),
      2,
    );
    expect(iso(monthEnd)).toEqual(['2026-03-31T12:00:00.000Z', '2026-05-31T12:00:00.000Z']);
  });

  it('takes a seconds field', () => {
    const runs = nextOccurrences(
      { kind: 'cron', cron: '*/15 * * * * *', timezone: 'UTC' },
      { anchorMs: 0 },
      at('2026-01-01T00:00:00Z'),
      3,
    );
    expect(iso(runs)).toEqual(['2026-01-01T00:00:15.000Z', '2026-01-01T00:00:30.000Z', '2026-01-01T00:00:45.000Z']);
  });
});

describe('every and at', () => {
  it('phases an interval from the anchor, first run one interval after creation', () => {
    const runs = nextOccurrences({ kind: 'every', everyMs: 60_000 }, { anchorMs: 1_000 }, 1_000, 3);
    expect(runs).toEqual([61_000, 121_000, 181_000]);
    // The phase is kept whenever it is asked again.
    expect(nextOccurrences({ kind: 'every', everyMs: 60_000 }, { anchorMs: 1_000 }, 500_000, 1)).toEqual([541_000]);
  });

  it('starts an interval at startAt and stops at endAt', () => {
    const window = { anchorMs: 10_000, startAt: 10_000, endAt: 40_000 };
    expect(nextOccurrences({ kind: 'every', everyMs: 10_000 }, window, 0, 10)).toEqual([
      10_000, 20_000, 30_000, 40_000,
    ]);
  });

  it('fires a one-shot once', () => {
    expect(nextOccurrences({ kind: 'at', at: 5_000 }, { anchorMs: 0 }, 0, 3)).toEqual([5_000]);
    expect(nextOccurrences({ kind: 'at', at: 5_000 }, { anchorMs: 0 }, 5_000, 3)).toEqual([]);
  });

  it('parses durations', () => {
    expect(parseDuration('1s')).toBe(1_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5 minutes')).toBeUndefined();
    expect(parseDuration('0s')).toBeUndefined();
  });
});

describe('validation', () => {
  const now = at('2026-06-01T00:00:00Z');
  const errorsOf = (input: Parameters<typeof normalizeSchedule>[0]) => {
    const result = normalizeSchedule(input, { now });
    return 'errors' in result ? result.errors : [];
  };
  it('refuses what a user can get wrong, naming the field', () => {
    expect(errorsOf({ cron: 'not a cron' })[0]?.field).toBe('schedule.cron');
    expect(errorsOf({ cron: '* * *' })[0]?.field).toBe('schedule.cron');
    expect(errorsOf({ cron: '61 * * * *' })[0]?.field).toBe('schedule.cron');
    expect(errorsOf({ cron: '0 9 * * *', timezone: 'Mars/Olympus' })[0]?.field).toBe('schedule.timezone');
    expect(errorsOf({ every: '500ms' })[0]?.field).toBe('schedule.every');
    expect(errorsOf({ everyMs: 999 })[0]?.field).toBe('schedule.everyMs');
    expect(errorsOf({ at: '2020-01-01T00:00:00Z' })[0]?.message).toMatch(/future/);
    expect(errorsOf({ at: 'tomorrow' })[0]?.field).toBe('schedule.at');
    expect(errorsOf({ every: '1m', cron: '* * * * *' })[0]?.field).toBe('schedule');
    expect(errorsOf({})[0]?.field).toBe('schedule');
  });
  it('accepts good schedules', () => {
    expect(errorsOf({ cron: '0 9 * * 1-5', timezone: 'Europe/Berlin' })).toEqual([]);
    expect(errorsOf({ cron: '*/10 * * * * *' })).toEqual([]);
    expect(errorsOf({ every: '1s' })).toEqual([]);
    expect(errorsOf({ everyMs: 1000 })).toEqual([]);
    expect(errorsOf({ at: '2026-12-01T09:00:00Z' })).toEqual([]);
  });
});

describe('properties', () => {
  const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata'];
  const cronArb = fc
    .tuple(
      fc.constantFrom('0', '15', '*/20', '5,35'),
      fc.constantFrom('*', '2', '1-3', '*/6', '9'),
      fc.constantFrom('*', '1', '15', '31'),
      fc.constantFrom('*', '3', '10', '*/2'),
      fc.constantFrom('*', '1-5', '0'),
    )
    .map((parts) => parts.join(' '));
  const startArb = fc.integer({ min: at('2025-01-01T00:00:00Z'), max: at('2030-01-01T00:00:00Z') });

  it('cron previews are strictly increasing, inside the window and match the fields', () => {
    fc.assert(
      fc.property(
        cronArb,
        fc.constantFrom(...zones),
        startArb,
        fc.integer({ min: 1, max: 400 }),
        (cron, timezone, start, days) => {
          const window = { anchorMs: start, startAt: start, endAt: start + days * 86_400_000 };
          const runs = nextOccurrences({ kind: 'cron', cron, timezone }, window, start - 3_600_000, 20);
          const parsed = CronExpressionParser.parse(cron, { tz: timezone });
          for (let i = 0; i < runs.length; i++) {
            const run = runs[i]!;
            if (i > 0) expect(run).toBeGreaterThan(runs[i - 1]!);
            expect(run).toBeGreaterThanOrEqual(window.startAt);
            expect(run).toBeLessThanOrEqual(window.endAt);
            const local = new Date(run).toLocaleString('en-US', { timeZone: timezone, hourCycle: 'h23' });
            const [date, time] = local.split(', ') as [string, string];
            const [month, day] = date.split('/').map(Number) as [number, number];
            const [hour, minute] = time.split(':').map(Number) as [number, number];
            expect(parsed.fields.minute.values).toContain(minute);
            expect(parsed.fields.hour.values).toContain(hour);
            expect(parsed.fields.month.values).toContain(month);
            if (cron.split(' ')[2] !== '*' && cron.split(' ')[4] === '*')
              expect(parsed.fields.dayOfMonth.values).toContain(day);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('interval previews keep the phase from any starting point', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1_000, max: 86_400_000 }),
        startArb,
        fc.integer({ min: 0, max: 10 ** 10 }),
        (everyMs, anchor, later) => {
          const runs = nextOccurrences({ kind: 'every', everyMs }, { anchorMs: anchor }, anchor + later, 5);
          expect(runs).toHaveLength(5);
          for (let i = 0; i < runs.length; i++) {
            expect((runs[i]! - anchor) % everyMs).toBe(0);
            expect(runs[i]!).toBeGreaterThan(anchor + later);
            if (i > 0) expect(runs[i]! - runs[i - 1]!).toBe(everyMs);
          }
          expect(runs[0]! - (anchor + later)).toBeLessThanOrEqual(everyMs);
        },
      ),
    );
  });
});
