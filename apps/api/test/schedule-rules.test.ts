/**
 * The schedule rules through the real api (app.inject on a real Postgres and Redis): a preview
 * answers exactly what a create would — the same refusals with the same status and fields, the
 * same minimum-interval quota (403), the same first instant — whatever the schedule, the window
 * or the quota (fast-check); and the cases of the DST report answer as they should.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ADMIN_TOKEN, startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
/** API keys of services by their minIntervalMs quota. */
const keys = new Map<number, string>();
const QUOTAS = [1_000, 60_000, 30 * 60_000, 2 * 3_600_000, 86_400_000];
const DAY = 86_400_000;

beforeAll(async () => {
  api = await startTestApi();
  for (const minIntervalMs of QUOTAS) {
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/admin/services',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { name: `rules-${minIntervalMs}`, quotas: { minIntervalMs } },
    });
    keys.set(minIntervalMs, created.json().apiKey);
  }
});
afterAll(async () => {
  await api?.close();
});

const inject = (key: string, method: 'GET' | 'POST', url: string, payload?: object) =>
  api.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload ? { payload } : {}) });

let names = 0;
const createJob = (key: string, body: object) =>
  inject(key, 'POST', '/v1/jobs', { name: `job-${++names}`, target: { url: 'https://example.com/hook' }, ...body });

describe('preview and create agree', () => {
  const cron = fc
    .tuple(
      fc.constantFrom('0', '*/50', '*/15', '0,1', '30', '*/5', 'H'),
      fc.constantFrom('*', '*/2', '2', '0,23', '9-17', '24'),
      fc.constantFrom('*', '1', 'L', '30'),
      fc.constantFrom('*', '2', '1-6'),
      fc.constantFrom('*', '1-5', '0', '1,3'),
    )
    .map((fields) => fields.join(' '));
  const schedule = fc.oneof(
    fc.record({
      cron: fc.oneof(cron, fc.constantFrom('@hourly', '@daily', '@reboot', '* * * * *', '0 0 30 2 *')),
      timezone: fc.constantFrom('UTC', 'Europe/Berlin', 'Australia/Lord_Howe', 'Pacific/Chatham', 'Nowhere/City'),
    }),
    fc.record({ every: fc.constantFrom('500ms', '1s', '30s', '5m', '45m', '1h', '3h', '1d', '2d') }),
    fc.record({ everyMs: fc.constantFrom(999, 1_000, 90_000, 3_600_000) }),
    fc.integer({ min: -3, max: 30 }).map((days) => ({ at: new Date(Date.now() + days * DAY + 1_234).toISOString() })),
  );
  /** Days from now, or absent. */
  const instant = fc.option(fc.integer({ min: -40, max: 40 }), { nil: undefined });

  it('the same status, problem code and fields, and the same instants', async () => {
    await fc.assert(
      fc.asyncProperty(
        schedule,
        instant,
        instant,
        fc.constantFrom(...QUOTAS),
        async (sched, startDays, endDays, quota) => {
          const key = keys.get(quota)!;
          const at = (days: number | undefined) =>
            days === undefined ? {} : { iso: new Date(Date.now() + days * DAY + 7_000).toISOString() };
          const window = {
            ...(startDays === undefined ? {} : { startAt: at(startDays).iso }),
            ...(endDays === undefined ? {} : { endAt: at(endDays).iso }),
          };
          const preview = await inject(key, 'POST', '/v1/schedules/preview', { schedule: sched, ...window, count: 5 });
          const created = await createJob(key, { schedule: sched, ...window });
          const label = JSON.stringify({ sched, window, quota, preview: preview.json(), created: created.json() });
          if (preview.statusCode !== 200) {
            expect(created.statusCode, label).toBe(preview.statusCode);
            const fields = (r: typeof preview) => (r.json().errors ?? []).map((e: { field: string }) => e.field).sort();
            expect(created.json().code, label).toBe(preview.json().code);
            expect(fields(created), label).toEqual(fields(preview));
            return;
          }
          expect(created.statusCode, label).toBe(201);
          const job = created.json();
          const times: number[] = preview.json().nextRuns.map(Date.parse);
          const createdAt = Date.parse(job.createdAt);
          const phasedFromNow = !('cron' in sched) && !('at' in sched) && startDays === undefined;
          if (phasedFromNow) {
            // Each is phased from its own "now": one interval after it.
            const everyMs = job.schedule.everyMs ?? times[1]! - times[0]!;
            expect(Date.parse(job.nextRunAt), label).toBe(createdAt + everyMs);
            return;
          }
          // The create's first instant is the first previewed one still ahead when it was made.
          const expected = times.find((t) => t > createdAt);
          expect(job.nextRunAt === null ? undefined : Date.parse(job.nextRunAt), label).toBe(expected);
          expect(job.state, label).toBe(times.length === 0 ? 'completed' : 'active');
          const next: number[] = (await inject(key, 'GET', `/v1/jobs/${job.id}/next-runs?count=5`))
            .json()
            .nextRuns.map(Date.parse);
          const ahead = times.filter((t) => next.length > 0 && t >= next[0]!);
          expect(next.slice(0, ahead.length), label).toEqual(ahead.slice(0, next.length));
        },
      ),
      { numRuns: 80 },
    );
  });

  it('under a 30-minute quota, */50 * * * * is refused by both, with 403 naming schedule.cron', async () => {
    const key = keys.get(30 * 60_000)!;
    for (const response of [
      await inject(key, 'POST', '/v1/schedules/preview', { schedule: { cron: '*/50 * * * *' } }),
      await createJob(key, { schedule: { cron: '*/50 * * * *' } }),
    ]) {
      expect(response.statusCode).toBe(403);
      expect(response.json()).toMatchObject({
        code: 'quota_exceeded',
        quota: 'minIntervalMs',
        errors: [{ field: 'schedule.cron' }],
      });
    }
    expect(
      (await inject(key, 'POST', '/v1/schedules/preview', { schedule: { cron: '*/30 * * * *' } })).statusCode,
    ).toBe(200);
  });
});

describe('cron schedules through the api', () => {
  it('creates the Lord Howe job of the report active, its next run after the April change', async () => {
    const key = keys.get(1_000)!;
    const created = await createJob(key, {
      schedule: { cron: '0 3 * * *', timezone: 'Australia/Lord_Howe' },
      startAt: '2027-04-03T00:00:00Z',
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ state: 'active', nextRunAt: '2027-04-03T16:30:00.000Z' });
    const next = await inject(key, 'GET', `/v1/jobs/${created.json().id}/next-runs?count=3`);
    expect(next.json().nextRuns).toEqual([
      '2027-04-03T16:30:00.000Z',
      '2027-04-04T16:30:00.000Z',
      '2027-04-05T16:30:00.000Z',
    ]);
  });

  it('takes the nicknames and refuses H and @reboot, naming schedule.cron', async () => {
    const key = keys.get(1_000)!;
    const daily = await createJob(key, { schedule: { cron: '@daily', timezone: 'Europe/Berlin' } });
    expect(daily.statusCode).toBe(201);
    expect(new Date(daily.json().nextRunAt).toLocaleTimeString('en-GB', { timeZone: 'Europe/Berlin' })).toBe(
      '00:00:00',
    );
    for (const cron of ['H 3 * * *', '@reboot']) {
      const refused = await createJob(key, { schedule: { cron } });
      expect(refused.statusCode).toBe(400);
      expect(refused.json().errors).toEqual([{ field: 'schedule.cron', message: expect.any(String) }]);
    }
  });
});
