import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { latestMissedOccurrence } from './catch-up.ts';
import { DEFAULT_MISFIRE, DEFAULT_RETRY, type Job } from './job.ts';
import { nextOccurrences, type Schedule } from './schedule.ts';
import { normalizedScheduleOf, windowOf } from './job.ts';

const T0 = Date.parse('2026-11-02T08:00:00Z');

function jobWith(schedule: Schedule, extra: Partial<Job> = {}): Job {
  return {
    id: '0190b6c4-0000-7000-8000-000000000000',
    serviceId: '0190b6c4-0000-7000-8000-000000000001',
    name: 'j',
    description: null,
    labels: {},
    schedule,
    target: { url: 'http://example.test', method: 'POST', headers: {}, timeoutMs: 10_000 },
    startAt: null,
    endAt: null,
    maxRuns: null,
    jitterMs: 0,
    overlap: 'allow',
    misfire: DEFAULT_MISFIRE,
    retry: DEFAULT_RETRY,
    state: 'active',
    version: 1,
    createdAt: T0,
    updatedAt: T0,
    ...extra,
  };
}

/** The slow, obvious answer: walk every occurrence from `from` to `now`. */
function bruteForce(job: Job, from: number, now: number): number | undefined {
  let latest: number | undefined;
  let cursor = from - 1;
  for (;;) {
    const [next] = nextOccurrences(normalizedScheduleOf(job), windowOf(job), cursor, 1);
    if (next === undefined || next > now) return latest;
    latest = cursor = next;
  }
}

describe('latestMissedOccurrence', () => {
  it('is the last interval occurrence that came due, keeping the phase', () => {
    const job = jobWith({ everyMs: 1_000 });
    expect(latestMissedOccurrence(job, T0 + 5_000, T0 + 9_500)).toBe(T0 + 9_000);
    expect(latestMissedOccurrence(job, T0 + 5_000, T0 + 9_000)).toBe(T0 + 9_000);
  });

  it('is nothing when the first unrun occurrence is still ahead', () => {
    expect(latestMissedOccurrence(jobWith({ everyMs: 60_000 }), T0 + 60_000, T0 + 30_000)).toBeUndefined();
  });

  it('finds a daily cron occurrence hours back, in its time zone', () => {
    const job = jobWith({ cron: '0 9 * * *', timezone: 'Europe/Berlin' });
    // 09:00 Berlin is 08:00 UTC in November; the gap ran from the day before to 13:00 UTC.
    const from = Date.parse('2026-11-01T08:00:00Z');
    expect(latestMissedOccurrence(job, from, Date.parse('2026-11-02T13:00:00Z'))).toBe(
      Date.parse('2026-11-02T08:00:00Z'),
    );
  });

  it('finds the latest second of a per-second cron after a day-long gap without walking it all', () => {
    const job = jobWith({ cron: '* * * * * *', timezone: 'UTC' });
    expect(latestMissedOccurrence(job, T0, T0 + 86_400_000 + 400)).toBe(T0 + 86_400_000);
  });

  it('respects endAt: nothing after the window closes', () => {
    const job = jobWith({ everyMs: 1_000 }, { endAt: T0 + 3_500 });
    expect(latestMissedOccurrence(job, T0 + 1_000, T0 + 10_000)).toBe(T0 + 3_000);
  });

  it('agrees with walking every occurrence (property)', () => {
    const schedules = fc.oneof(
      fc.integer({ min: 60, max: 7_200 }).map((s): Schedule => ({ everyMs: s * 1_000 })),
      fc.constantFrom<Schedule>(
        { cron: '*/7 * * * *', timezone: 'UTC' },
        { cron: '30 2 * * *', timezone: 'Europe/Berlin' },
        { cron: '15,45 * * * * *', timezone: 'America/New_York' },
        { cron: '0 9 * * 1-5', timezone: 'Asia/Kolkata' },
      ),
    );
    fc.assert(
      fc.property(
        schedules,
        fc.integer({ min: 0, max: 3 * 86_400_000 }),
        fc.integer({ min: 0, max: 6 * 3_600_000 }),
        (schedule, offset, gap) => {
          const job = jobWith(schedule);
          const from = T0 + offset;
          const now = from + gap;
          expect(latestMissedOccurrence(job, from, now)).toBe(bruteForce(job, from, now));
        },
      ),
      { numRuns: 40 },
    );
  });
});
