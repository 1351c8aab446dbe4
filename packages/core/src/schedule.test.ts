import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CRON_NICKNAMES,
  ScheduleComputeError,
  cronError,
  firesMoreOftenThan,
  nextCronAfter,
  nextOccurrences,
  normalizeSchedule,
  type NormalizedSchedule,
} from './schedule.ts';
import { parseDuration } from './duration.ts';
import { buildJobSpec, nextRunOf, type Job } from './job.ts';
import { catchUpOf, slotsBetween } from './policies.ts';

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

describe('interval properties', () => {
  const startArb = fc.integer({ min: at('2025-01-01T00:00:00Z'), max: at('2030-01-01T00:00:00Z') });
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

/** The instants of a cron schedule in `(from, until]`, as ISO strings. */
const cronRuns = (cron: string, timezone: string, from: string, until: string) =>
  iso(nextOccurrences({ kind: 'cron', cron, timezone }, { anchorMs: 0, endAt: at(until) }, at(from), 10_000));

// Each case of the report that cron-parser 5.10 got wrong, with the instants read off the zone's
// wall clock by hand. Lord Howe moves its clocks by 30 minutes (+11:00 ⇄ +10:30, at 02:00 local),
// Chatham by an hour at a 45-minute offset (+13:45 ⇄ +12:45, at 03:45 / 02:45 local).
describe('DST changes that used to stop a schedule or drop an instant', () => {
  it('Lord Howe, April: a create with 0 3 * * * and startAt 2027-04-03 is active, next run 04-04 03:00', () => {
    const now = at('2027-03-01T00:00:00Z');
    const spec = buildJobSpec(
      {
        name: 'lord-howe',
        schedule: { cron: '0 3 * * *', timezone: 'Australia/Lord_Howe' },
        target: { url: 'https://example.com/hook' },
        startAt: '2027-04-03T00:00:00Z',
      },
      { now },
    );
    const job: Job = { ...spec, id: 'j', serviceId: 's', state: 'active', version: 1, createdAt: now, updatedAt: now };
    // 2027-04-04 03:00 LHST (+10:30).
    expect(new Date(nextRunOf(job, now)!).toISOString()).toBe('2027-04-03T16:30:00.000Z');
  });

  it('Lord Howe, April: 0 * * * * keeps firing through the change, once an hour of wall clock', () => {
    const runs = cronRuns('0 * * * *', 'Australia/Lord_Howe', '2027-04-03T12:00:00Z', '2027-04-05T12:00:00Z');
    // 00:00 and 01:00 at +11:00; 01:30 becomes 01:00-ish again, so the next full hour is 02:00 at +10:30.
    expect(runs.slice(0, 5)).toEqual([
      '2027-04-03T13:00:00.000Z',
      '2027-04-03T14:00:00.000Z',
      '2027-04-03T15:30:00.000Z',
      '2027-04-03T16:30:00.000Z',
      '2027-04-03T17:30:00.000Z',
    ]);
    expect(runs).toHaveLength(47);
    expect(runs.at(-1)).toBe('2027-04-05T11:30:00.000Z');
  });

  it('Lord Howe, April: 15 2, 0 */2 and 20 */3 go on past the change', () => {
    expect(cronRuns('15 2 * * *', 'Australia/Lord_Howe', '2027-04-02T00:00:00Z', '2027-04-05T00:00:00Z')).toEqual([
      '2027-04-02T15:15:00.000Z',
      '2027-04-03T15:45:00.000Z',
      '2027-04-04T15:45:00.000Z',
    ]);
    expect(cronRuns('0 */2 * * *', 'Australia/Lord_Howe', '2027-04-03T12:00:00Z', '2027-04-03T20:00:00Z')).toEqual([
      '2027-04-03T13:00:00.000Z',
      '2027-04-03T15:30:00.000Z',
      '2027-04-03T17:30:00.000Z',
      '2027-04-03T19:30:00.000Z',
    ]);
    expect(cronRuns('20 */3 * * *', 'Australia/Lord_Howe', '2027-04-03T12:00:00Z', '2027-04-03T23:00:00Z')).toEqual([
      '2027-04-03T13:20:00.000Z',
      '2027-04-03T16:50:00.000Z',
      '2027-04-03T19:50:00.000Z',
      '2027-04-03T22:50:00.000Z',
    ]);
  });

  it('Lord Howe, October: */15 fires at 02:30 and 02:45, which exist (02:00 to 02:29 do not)', () => {
    expect(cronRuns('*/15 * * * *', 'Australia/Lord_Howe', '2026-10-03T15:00:00Z', '2026-10-03T16:00:00Z')).toEqual([
      '2026-10-03T15:15:00.000Z', // 01:45 +10:30
      '2026-10-03T15:30:00.000Z', // 02:30 +11:00
      '2026-10-03T15:45:00.000Z', // 02:45
      '2026-10-03T16:00:00.000Z', // 03:00
    ]);
  });

  it('Chatham, April: */15 fires every real quarter hour through the repeated hour, without stopping', () => {
    const runs = cronRuns('*/15 * * * *', 'Pacific/Chatham', '2027-04-03T00:00:00Z', '2027-04-05T00:00:00Z');
    expect(runs).toHaveLength(192);
    for (let i = 1; i < runs.length; i++) expect(at(runs[i]!) - at(runs[i - 1]!)).toBe(900_000);
    // 03:30 at +13:45, then the clocks go back: 02:45 at +12:45 comes again.
    expect(runs).toContain('2027-04-03T13:45:00.000Z');
    expect(runs).toContain('2027-04-03T14:00:00.000Z');
  });

  it('Chatham, April: 20 */3 fires at both 03:20', () => {
    expect(cronRuns('20 */3 * * *', 'Pacific/Chatham', '2027-04-03T11:00:00Z', '2027-04-03T18:00:00Z')).toEqual([
      '2027-04-03T13:35:00.000Z', // 03:20 +13:45
      '2027-04-03T14:35:00.000Z', // 03:20 +12:45
      '2027-04-03T17:35:00.000Z', // 06:20
    ]);
  });

  it('Chatham, September: */15 fires at 02:00, 02:15, 02:30 before the gap and 03:45 after it', () => {
    expect(cronRuns('*/15 * * * *', 'Pacific/Chatham', '2027-09-25T13:00:00Z', '2027-09-25T14:15:00Z')).toEqual([
      '2027-09-25T13:15:00.000Z', // 02:00 +12:45
      '2027-09-25T13:30:00.000Z', // 02:15
      '2027-09-25T13:45:00.000Z', // 02:30
      '2027-09-25T14:00:00.000Z', // 03:45 +13:45
      '2027-09-25T14:15:00.000Z', // 04:00
    ]);
  });

  it('Berlin, October: 0 */2 fires at both 02:00, as a stepped hour does at every real instant', () => {
    expect(cronRuns('0 */2 * * *', 'Europe/Berlin', '2026-10-24T21:00:00Z', '2026-10-25T04:00:00Z')).toEqual([
      '2026-10-24T22:00:00.000Z', // 00:00 CEST
      '2026-10-25T00:00:00.000Z', // 02:00 CEST
      '2026-10-25T01:00:00.000Z', // 02:00 CET
      '2026-10-25T03:00:00.000Z', // 04:00 CET
    ]);
  });

  it('a fixed hour fires each named time once through a repeated hour, a wildcard hour at every instant', () => {
    // Berlin, 25 October 2026: 02:00-02:59 happens at +02:00, then again at +01:00.
    expect(cronRuns('*/20 2 * * *', 'Europe/Berlin', '2026-10-24T23:30:00Z', '2026-10-25T03:00:00Z')).toEqual([
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T00:20:00.000Z',
      '2026-10-25T00:40:00.000Z',
    ]);
    expect(cronRuns('40 * * * *', 'Europe/Berlin', '2026-10-24T23:30:00Z', '2026-10-25T02:00:00Z')).toEqual([
      '2026-10-24T23:40:00.000Z',
      '2026-10-25T00:40:00.000Z',
      '2026-10-25T01:40:00.000Z',
    ]);
  });

  it('skips a fixed time the clocks jump over, also when the jump is at midnight (Santiago)', () => {
    // Chile moves from 00:00 to 01:00 on 6 September 2026: that day has no midnight.
    expect(cronRuns('0 0 * * *', 'America/Santiago', '2026-09-04T12:00:00Z', '2026-09-08T12:00:00Z')).toEqual([
      '2026-09-05T04:00:00.000Z',
      '2026-09-07T03:00:00.000Z',
      '2026-09-08T03:00:00.000Z',
    ]);
  });
});

describe('the cron dialect', () => {
  const utc = (cron: string, from: string, count: number) =>
    iso(nextOccurrences({ kind: 'cron', cron, timezone: 'UTC' }, { anchorMs: 0 }, at(from), count));

  it('combines day of month and day of week by OR when both are restricted, as Vixie cron does', () => {
    // The 13th (a Friday in March 2026 too) or any Friday.
    expect(utc('0 12 13 * 5', '2026-02-01T00:00:00Z', 4)).toEqual([
      '2026-02-06T12:00:00.000Z',
      '2026-02-13T12:00:00.000Z',
      '2026-02-20T12:00:00.000Z',
      '2026-02-27T12:00:00.000Z',
    ]);
    // A step is a restriction too: odd days or Mondays.
    expect(utc('0 0 */2 * 1', '2026-03-01T00:00:00Z', 4)).toEqual([
      '2026-03-02T00:00:00.000Z',
      '2026-03-03T00:00:00.000Z',
      '2026-03-05T00:00:00.000Z',
      '2026-03-07T00:00:00.000Z',
    ]);
    // With one day field `*` (or `?`), the other alone decides.
    expect(utc('0 0 * * 1', '2026-03-01T00:00:00Z', 1)).toEqual(['2026-03-02T00:00:00.000Z']);
    expect(utc('0 0 ? * 1', '2026-03-01T00:00:00Z', 1)).toEqual(['2026-03-02T00:00:00.000Z']);
    expect(utc('0 0 13 * ?', '2026-03-01T00:00:00Z', 1)).toEqual(['2026-03-13T00:00:00.000Z']);
  });

  it('does not skip the 1st of March after a common year’s February (croner 11.0.0 did, with OR)', () => {
    // Found by the property test against cron-parser: the 1st (a Thursday) or any Saturday.
    expect(utc('0 0 1 * 6', '2029-02-26T00:00:00Z', 2)).toEqual([
      '2029-03-01T00:00:00.000Z',
      '2029-03-03T00:00:00.000Z',
    ]);
  });

  it('takes L, W and # in the day fields', () => {
    expect(utc('0 0 L * *', '2026-02-01T00:00:00Z', 2)).toEqual([
      '2026-02-28T00:00:00.000Z',
      '2026-03-31T00:00:00.000Z',
    ]);
    expect(utc('0 0 LW * *', '2026-05-01T00:00:00Z', 1)).toEqual(['2026-05-29T00:00:00.000Z']);
    // 15 August 2026 is a Saturday: the nearest weekday is Friday the 14th.
    expect(utc('0 0 15W 8 *', '2026-01-01T00:00:00Z', 1)).toEqual(['2026-08-14T00:00:00.000Z']);
    expect(utc('0 0 * * 5L', '2026-03-01T00:00:00Z', 1)).toEqual(['2026-03-27T00:00:00.000Z']);
    expect(utc('0 0 * * 5#L', '2026-03-01T00:00:00Z', 1)).toEqual(['2026-03-27T00:00:00.000Z']);
    expect(utc('0 0 * * MON#2', '2026-03-01T00:00:00Z', 1)).toEqual(['2026-03-09T00:00:00.000Z']);
  });

  it('takes month and weekday names, 7 for Sunday, and a seconds field', () => {
    expect(utc('0 12 * JAN-MAR SUN', '2026-03-20T00:00:00Z', 2)).toEqual([
      '2026-03-22T12:00:00.000Z',
      '2026-03-29T12:00:00.000Z',
    ]);
    // 1 March 2026 is a Sunday; strictly after its midnight comes the next one.
    expect(utc('0 0 * * 7', '2026-03-01T00:00:00Z', 1)).toEqual(['2026-03-08T00:00:00.000Z']);
    expect(utc('30 0 0 * * *', '2026-03-01T00:00:00Z', 1)).toEqual(['2026-03-01T00:00:30.000Z']);
  });

  it('takes each nickname as the expression it stands for', () => {
    const expanded: Record<(typeof CRON_NICKNAMES)[number], string> = {
      '@yearly': '0 0 1 1 *',
      '@annually': '0 0 1 1 *',
      '@monthly': '0 0 1 * *',
      '@weekly': '0 0 * * 0',
      '@daily': '0 0 * * *',
      '@midnight': '0 0 * * *',
      '@hourly': '0 * * * *',
    };
    for (const nickname of CRON_NICKNAMES) {
      expect(cronError(nickname), nickname).toBeUndefined();
      for (const timezone of ['UTC', 'Europe/Berlin']) {
        const window = { anchorMs: 0 };
        const from = at('2026-10-20T00:00:00Z');
        expect(nextOccurrences({ kind: 'cron', cron: nickname, timezone }, window, from, 6)).toEqual(
          nextOccurrences({ kind: 'cron', cron: expanded[nickname], timezone }, window, from, 6),
        );
      }
    }
    expect(cronError('@DAILY')).toBeUndefined();
  });

  it('refuses what it does not speak, saying why', () => {
    expect(cronError('H 3 * * *')).toMatch(/H \(a hashed value\) is not supported/);
    expect(cronError('0 0 1 * +MON')).toMatch(/combine by OR/);
    expect(cronError('@reboot')).toMatch(/not a nickname/);
    expect(cronError('0 0 0 1 1 * 2027')).toMatch(/5 fields/);
    expect(cronError('5/5 * * * *')).toMatch(/not a valid cron expression/);
    expect(cronError('0 0 0 ? * *')).toBeUndefined();
    expect(cronError('0 ? * * *')).toMatch(/hour "\?" may hold only/);
    expect(cronError('0 0 L W * *')).toMatch(/may hold only/);
    expect(cronError('0 0 31 2 *')).toBeUndefined();
    const never = normalizeSchedule({ cron: '0 0 31 2 *' }, { now: at('2026-01-01T00:00:00Z') });
    expect(never).toEqual({ errors: [{ field: 'schedule.cron', message: 'never fires' }] });
  });
});

describe('an instant that cannot be computed is an error, never the end of a schedule', () => {
  // Stored before today's dialect (H was accepted, hashed at random on every parse): the engine
  // cannot read it. An unknown zone stands for any other failure of the engine.
  const stored: NormalizedSchedule = { kind: 'cron', cron: 'H 3 * * *', timezone: 'UTC' };
  const from = at('2026-06-01T00:00:00Z');
  const storedJob = (schedule: Job['schedule'], extra: Partial<Job> = {}): Job => ({
    ...buildJobSpec({ name: 'j', schedule: { every: '1h' }, target: { url: 'https://example.com' } }, { now: from }),
    schedule,
    id: '0190b6c4-0000-7000-8000-000000000000',
    serviceId: 's',
    state: 'active',
    version: 1,
    createdAt: from,
    updatedAt: from,
    ...extra,
  });

  it('throws a ScheduleComputeError naming schedule.cron, while a real end is undefined', () => {
    expect(() => nextOccurrences(stored, { anchorMs: 0 }, from, 1)).toThrow(ScheduleComputeError);
    expect(() => nextCronAfter('0 3 * * *', 'Mars/Olympus', from)).toThrow(ScheduleComputeError);
    try {
      nextCronAfter(stored.cron, stored.timezone, from);
    } catch (error) {
      expect(error).toMatchObject({ status: 400, code: 'validation_failed', cron: 'H 3 * * *', afterMs: from });
      expect((error as ScheduleComputeError).errors).toEqual([
        {
          field: 'schedule.cron',
          message: expect.stringMatching(/^cannot compute its next occurrence after 2026-06-01/),
        },
      ]);
    }
    expect(nextCronAfter('0 0 30 2 *', 'UTC', from)).toBeUndefined();
    const ended = { kind: 'cron', cron: '0 3 * * *', timezone: 'UTC' } as const;
    expect(nextOccurrences(ended, { anchorMs: 0, endAt: from + 3_600_000 }, from, 5)).toEqual([]);
    expect(() => nextRunOf(storedJob({ cron: 'H 3 * * *', timezone: 'UTC' }), from)).toThrow(ScheduleComputeError);
  });

  it('a catch-up or a slot fill of such a job is skipped, not thrown into the reconciler or the worker', () => {
    const job = storedJob({ cron: 'H 3 * * *', timezone: 'UTC' });
    expect(catchUpOf(job, from - 86_400_000, from)).toBeUndefined();
    expect(slotsBetween(job, from - 86_400_000, from)).toBeUndefined();
  });

  it('is refused at validation with the field named', () => {
    const result = normalizeSchedule({ cron: '0 3 * * *', timezone: 'UTC' }, { now: from });
    expect('schedule' in result).toBe(true);
    // Validation names the dialect's reason before the engine is asked.
    expect(normalizeSchedule({ cron: 'H 3 * * *' }, { now: from })).toEqual({
      errors: [{ field: 'schedule.cron', message: expect.stringMatching(/hashed value/) }],
    });
  });
});

describe('the minimum-interval measure', () => {
  const cron = (expression: string): NormalizedSchedule => ({ kind: 'cron', cron: expression, timezone: 'UTC' });
  const MIN = 60_000;
  it('finds the shortest gap of a cron expression, across the day boundary too', () => {
    const HALF_HOUR = 30 * MIN;
    // */50 fires at :00 and :50: ten minutes from :50 to the next hour's :00.
    expect(firesMoreOftenThan(cron('*/50 * * * *'), HALF_HOUR)).toBe(10 * MIN);
    expect(firesMoreOftenThan(cron('0,1 * * * *'), HALF_HOUR)).toBe(MIN);
    expect(firesMoreOftenThan(cron('*/30 * * * *'), HALF_HOUR)).toBeUndefined();
    // 23:00 to the next day's 00:00.
    expect(firesMoreOftenThan(cron('0 0,23 * * *'), 2 * 60 * MIN)).toBe(60 * MIN);
    // Only on the days named: Monday 23:00 to Tuesday 00:00 is not a gap of the pattern.
    expect(firesMoreOftenThan(cron('0 0,23 * * 1,3'), 2 * 60 * MIN)).toBeUndefined();
    expect(firesMoreOftenThan(cron('0 9 * * 1,3,5'), 3 * 86_400_000)).toBe(2 * 86_400_000);
    expect(firesMoreOftenThan(cron('* * * * * *'), 2_000)).toBe(1_000);
    expect(firesMoreOftenThan(cron('@hourly'), 61 * MIN)).toBe(60 * MIN);
    expect(firesMoreOftenThan({ kind: 'every', everyMs: 5 * MIN }, 10 * MIN)).toBe(5 * MIN);
    expect(firesMoreOftenThan({ kind: 'at', at: 0 }, 10 * MIN)).toBeUndefined();
  });

  it('never claims a gap longer than one the expression really has (fast-check, against the instants)', () => {
    const part = (values: string[]) => fc.constantFrom(...values);
    const expression = fc
      .tuple(
        part(['0', '*/7', '10,50', '0-2', '*/30', '59']),
        part(['*', '0', '23', '0,23', '*/5', '9-17']),
        part(['*', '*', '1', 'L', '1-7']),
        part(['*', '*', '2', '1-6']),
        part(['*', '*', '1-5', '0', '6#1']),
      )
      .map((fields) => fields.join(' '));
    fc.assert(
      fc.property(expression, fc.integer({ min: 60_000, max: 3 * 86_400_000 }), (text, minMs) => {
        const shortest = firesMoreOftenThan(cron(text), Number.POSITIVE_INFINITY)!;
        const runs = nextOccurrences(cron(text), { anchorMs: 0 }, at('2027-01-01T00:00:00Z'), 400);
        for (let i = 1; i < runs.length; i++) expect(runs[i]! - runs[i - 1]!).toBeGreaterThanOrEqual(shortest);
        if (text.endsWith('* * *')) expect(Math.min(...runs.slice(1).map((r, i) => r - runs[i]!))).toBe(shortest);
        expect(firesMoreOftenThan(cron(text), minMs)).toBe(shortest < minMs ? shortest : undefined);
      }),
      { numRuns: 100 },
    );
  });
});
