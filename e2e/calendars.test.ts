/**
 * Exclusion calendars through a real api, worker and callback sink: an occurrence on a day a
 * job's calendar excludes is recorded `skipped` (`excluded`) and never delivered, while a job
 * beside it without the calendar fires; a change of the calendar alone (no change of the job)
 * reaches the worker at the next occurrence, which is delivered; and a calendar a job lists
 * cannot be deleted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  ADMIN_TOKEN,
  call,
  eventually,
  startApi,
  startWorker,
  type FleetEnv,
  type Proc,
  startSink,
  type Sink,
  deletePrefix,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc;
let sink: Sink;
let token: string;

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_calendars');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  sink = await startSink();
  [api, worker] = await Promise.all([startApi(env), startWorker(env)]);
  const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'holidays' } });
  token = service.body.apiKey;
});
afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

const utcDay = (offsetDays: number) => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
const hits = (path: string) => sink.received.filter((r) => r.path === path).length;

async function runsOf(jobId: string): Promise<Array<{ status: string; skipReason: string | null }>> {
  const page = await call(api, 'GET', `/v1/jobs/${jobId}/runs?limit=100`, { token });
  expect(page.status).toBe(200);
  return page.body.items;
}

describe('a job with an exclusion calendar', () => {
  it('records excluded occurrences as skipped, delivers none, and fires once the calendar frees the day', async () => {
    // Yesterday to tomorrow, UTC: today whatever the hour the test runs at.
    const calendar = await call(api, 'POST', '/v1/calendars', {
      token,
      body: { name: 'this-week', ranges: [{ from: utcDay(-1), to: utcDay(1) }] },
    });
    expect(calendar.status).toBe(201);
    const job = (name: string, calendars: string[]) =>
      call(api, 'POST', '/v1/jobs', {
        token,
        body: { name, schedule: { every: '2s' }, target: { url: `${sink.url}/${name}` }, calendars },
      });
    const held = await job('held', [calendar.body.id]);
    const free = await job('free', []);
    expect(held.status).toBe(201);
    expect(free.status).toBe(201);
    expect(held.body.calendars).toEqual([calendar.body.id]);

    // The job beside it fires; the held one records its occurrences as excluded and sends nothing.
    const excluded = await eventually(
      async () => {
        const runs = await runsOf(held.body.id);
        return runs.length >= 3 && hits('/free') >= 2 ? runs : undefined;
      },
      30_000,
      'three excluded occurrences and two deliveries of the free job',
    );
    expect(excluded.every((r) => r.status === 'skipped' && r.skipReason === 'excluded')).toBe(true);
    expect(hits('/held')).toBe(0);
    const skippedList = await call(api, 'GET', `/v1/jobs/${held.body.id}/runs?status=skipped`, { token });
    expect(skippedList.body.items.length).toBeGreaterThanOrEqual(3);
    const read = await call(api, 'GET', `/v1/jobs/${held.body.id}`, { token });
    expect(read.body.runCount).toBe(0);
    expect(read.body.state).toBe('active');

    // In use: the calendar stays.
    const refused = await call(api, 'DELETE', `/v1/calendars/${calendar.body.id}`, { token });
    expect(refused.status).toBe(409);
    expect(refused.headers['content-type']).toContain('application/problem+json');

    // The calendar no longer excludes today: the job, unchanged, is delivered at its next occurrence.
    const patched = await call(api, 'PATCH', `/v1/calendars/${calendar.body.id}`, {
      token,
      body: { ranges: [{ from: utcDay(5), to: utcDay(6) }] },
    });
    expect(patched.status).toBe(200);
    await sink.waitFor(() => hits('/held') >= 1, 20_000, 'a delivery of the held job');
    await eventually(
      async () => ((await runsOf(held.body.id)).some((r) => r.status === 'succeeded') ? true : undefined),
      20_000,
      'the delivered run recorded as succeeded',
    );
    expect((await call(api, 'GET', `/v1/jobs/${held.body.id}`, { token })).body.version).toBe(1);
  });
});
