/**
 * The BullMQ side of an instant that cannot be computed (a cron stored before today's dialect):
 * the repeat strategy BullMQ calls tells the listeners and answers "none for now", and the job is
 * registered all the same. Its core side is in packages/core/src/schedule.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { buildJobSpec, onScheduleError, type Job, type ScheduleComputeError } from '@tickwork/core';
import { cronRepeatStrategy, registrationOf } from '../src/catalog.ts';

const at = (text: string) => Date.parse(text);
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

describe('an instant that cannot be computed, as BullMQ meets it', () => {
  it('the repeat strategy tells the listeners and keeps the job registered; real ends stay undefined', () => {
    const heard: ScheduleComputeError[] = [];
    const stop = onScheduleError((error) => heard.push(error));
    try {
      expect(cronRepeatStrategy(from, { pattern: 'H 3 * * *', tz: 'UTC' })).toBeUndefined();
      expect(heard).toHaveLength(1);
      expect(heard[0]).toMatchObject({ cron: 'H 3 * * *', timezone: 'UTC', afterMs: from });
      // A real end is no error.
      expect(cronRepeatStrategy(from, { pattern: '0 3 * * *', tz: 'UTC', endDate: from + 1_000 })).toBeUndefined();
      expect(cronRepeatStrategy(from, { pattern: '0 3 * * *', tz: 'UTC' })).toBe(at('2026-06-01T03:00:00Z'));
      expect(heard).toHaveLength(1);
    } finally {
      stop();
    }
    cronRepeatStrategy(from, { pattern: 'H 3 * * *', tz: 'UTC' });
    expect(heard).toHaveLength(1);
    // Registered all the same, also with an end (which is when the time maths runs first).
    const bounded = storedJob({ cron: 'H 3 * * *', timezone: 'UTC' }, { endAt: from + 86_400_000 });
    expect(registrationOf(bounded, from)).toMatchObject({
      kind: 'scheduler',
      repeat: { pattern: 'H 3 * * *', tz: 'UTC', endDate: from + 86_400_000 },
    });
  });
});
