/**
 * The whole path with real processes: a service is created through the admin route, a job that
 * fires every second is created over HTTP, a real worker delivers to a local sink, the runs are
 * recorded, and after DELETE nothing more arrives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  ADMIN_TOKEN,
  call,
  startApi,
  startWorker,
  type FleetEnv,
  type Proc,
  eventually,
  startSink,
  type Sink,
  deletePrefix,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc;
let sink: Sink;

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  sink = await startSink();
  [api, worker] = await Promise.all([startApi(env), startWorker(env)]);
});

afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

describe('foundation end to end', () => {
  it('fires an every-second job at a local sink, records succeeded runs, and stops after DELETE', async () => {
    const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'e2e' } });
    expect(service.status).toBe(201);
    const token = service.body.apiKey as string;

    const created = await call(api, 'POST', '/v1/jobs', {
      token,
      body: {
        name: 'tick',
        schedule: { every: '1s' },
        target: { url: `${sink.url}/hook`, body: { hello: 'tickwork' } },
      },
    });
    expect(created.status).toBe(201);
    const jobId = created.body.id as string;

    await sink.waitFor(
      (r) => r.filter((x) => x.headers['tickwork-job-id'] === jobId).length >= 3,
      20_000,
      '3 callbacks',
    );
    const callbacks = sink.received.filter((x) => x.headers['tickwork-job-id'] === jobId);
    const ids = callbacks.map((c) => c.headers['webhook-id']);
    expect(new Set(ids).size).toBe(ids.length);
    for (const callback of callbacks) {
      expect(callback.method).toBe('POST');
      expect(callback.path).toBe('/hook');
      expect(JSON.parse(callback.body)).toEqual({ hello: 'tickwork' });
      expect(callback.headers['content-type']).toBe('application/json');
      expect(callback.headers['tickwork-attempt']).toBe('1');
      expect(callback.headers['tickwork-trigger']).toBe('schedule');
      expect(callback.headers['user-agent']).toMatch(/^Tickwork\//);
      expect(callback.headers['idempotency-key']).toBe(callback.headers['webhook-id']);
      expect(callback.headers['webhook-signature']).toMatch(/^v1,/);
      // The occurrence's own instant, on the job's one-second phase: not the clock at sending.
      const scheduledFor = Date.parse(String(callback.headers['tickwork-scheduled-for']));
      expect((scheduledFor - Date.parse(created.body.createdAt)) % 1000).toBe(0);
      expect(callback.at).toBeGreaterThanOrEqual(scheduledFor);
    }

    // Every callback has its succeeded run, readable over the API.
    const runs = await eventually(
      async () => {
        const page = await call(api, 'GET', `/v1/jobs/${jobId}/runs?limit=100`, { token });
        const succeeded = page.body.items.filter((r: { status: string }) => r.status === 'succeeded');
        return ids.every((id) => succeeded.some((r: { id: string }) => r.id === id)) ? page.body.items : undefined;
      },
      10_000,
      'succeeded runs for every callback',
    );
    const first = runs.find((r: { id: string }) => r.id === ids[0]);
    expect(first).toMatchObject({
      trigger: 'schedule',
      attempts: 1,
      httpStatus: 200,
      responseExcerpt: 'ok',
      error: null,
    });
    const one = await call(api, 'GET', `/v1/runs/${ids[0]}`, { token });
    expect(one.status).toBe(200);
    expect(one.body.id).toBe(ids[0]);

    const job = await call(api, 'GET', `/v1/jobs/${jobId}`, { token });
    expect(job.body.runCount).toBeGreaterThanOrEqual(3);
    expect(job.body.lastRunStatus).toBe('succeeded');
    expect(job.body.lastRunAt).not.toBeNull();

    expect((await call(api, 'DELETE', `/v1/jobs/${jobId}`, { token })).status).toBe(204);
    // An occurrence already in flight may still land; after it, nothing more may arrive.
    await new Promise((r) => setTimeout(r, 1_500));
    const settled = sink.received.length;
    await expect(sink.waitFor((r) => r.length > settled, 3_000)).rejects.toThrow(/timed out/);
  });

  it('fires a one-shot job once and marks it completed', async () => {
    const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'e2e-once' } });
    const token = service.body.apiKey as string;
    const at = new Date(Date.now() + 1_500).toISOString();
    const created = await call(api, 'POST', '/v1/jobs', {
      token,
      body: { name: 'once', schedule: { at }, target: { url: `${sink.url}/once`, method: 'PUT' } },
    });
    expect(created.status).toBe(201);
    await sink.waitFor((r) => r.some((x) => x.path === '/once'), 15_000, 'the one-shot callback');
    const callback = sink.received.find((x) => x.path === '/once')!;
    expect(callback.method).toBe('PUT');
    expect(callback.headers['tickwork-scheduled-for']).toBe(at);
    const job = await eventually(
      async () => {
        const r = await call(api, 'GET', `/v1/jobs/${created.body.id}`, { token });
        return r.body.state === 'completed' ? r.body : undefined;
      },
      10_000,
      'the job to complete',
    );
    expect(job).toMatchObject({ state: 'completed', runCount: 1, lastRunStatus: 'succeeded', nextRunAt: null });
  });
});
