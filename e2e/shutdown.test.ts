/**
 * SIGTERM to a real worker while a 3 s callback is in flight: the callback completes, is
 * recorded once as succeeded, the process exits 0 — and an occurrence that comes due while it
 * drains is left for the next worker rather than taken or lost.
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
  startOwnRedis,
} from '@tickwork/testkit';
import { request } from 'undici';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let sink: Sink;
const workers: Proc[] = [];

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_shutdown');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix(), LOG_LEVEL: 'info' };
  sink = await startSink();
  sink.respond = (request) => (request.path.startsWith('/slow') ? { status: 200, delayMs: 3_000 } : { status: 200 });
  api = await startApi(env);
});
afterAll(async () => {
  await Promise.allSettled([api?.stop(), ...workers.map((w) => w.stop())]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

describe('worker graceful shutdown', () => {
  it('finishes and records the in-flight callback, takes nothing new, and exits 0', async () => {
    const { apiKey } = (await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'drain' } }))
      .body;
    const first = await startWorker(env);
    workers.push(first);

    const slow = await call(api, 'POST', '/v1/jobs', {
      token: apiKey,
      body: {
        name: 'slow',
        schedule: { at: new Date(Date.now() + 1_000).toISOString() },
        target: { url: `${sink.url}/slow` },
      },
    });
    expect(slow.status).toBe(201);
    await sink.waitFor((r) => r.some((x) => x.path === '/slow'), 15_000, 'the slow callback to start');

    const exited = first.stop('SIGTERM');
    const signalledAt = Date.now();
    // Comes due while the worker drains: a stopping worker must leave it alone.
    const later = await call(api, 'POST', '/v1/jobs', {
      token: apiKey,
      body: {
        name: 'later',
        schedule: { at: new Date(Date.now() + 1_000).toISOString() },
        target: { url: `${sink.url}/later` },
      },
    });
    expect(later.status).toBe(201);

    expect(await exited).toBe(0);
    const exitedAt = Date.now();
    expect(exitedAt - signalledAt).toBeLessThan(30_000);
    const output = first.output.join('');
    expect(output).toContain('shutting down: finishing in-flight occurrences');
    expect(output).toContain('worker stopped');

    const run = await eventually(
      async () => {
        const page = await call(api, 'GET', `/v1/jobs/${slow.body.id}/runs`, { token: apiKey });
        return page.body.items[0]?.status === 'succeeded' ? page.body.items : undefined;
      },
      5_000,
      'the slow run recorded as succeeded',
    );
    expect(run).toHaveLength(1);
    expect(run[0]).toMatchObject({ attempts: 1, httpStatus: 200 });
    expect(sink.received.filter((x) => x.path === '/slow')).toHaveLength(1);
    expect(sink.received.filter((x) => x.path === '/later')).toHaveLength(0);

    // The next worker delivers what came due while the first one drained, once.
    const second = await startWorker(env);
    workers.push(second);
    await sink.waitFor((r) => r.some((x) => x.path === '/later'), 15_000, 'the later callback from the next worker');
    const laterRuns = await eventually(
      async () => {
        const page = await call(api, 'GET', `/v1/jobs/${later.body.id}/runs`, { token: apiKey });
        return page.body.items[0]?.status === 'succeeded' ? page.body.items : undefined;
      },
      5_000,
      'the later run recorded',
    );
    expect(laterRuns).toHaveLength(1);
    expect(sink.received.find((x) => x.path === '/later')!.at).toBeGreaterThanOrEqual(exitedAt);
    expect(sink.received.filter((x) => x.path === '/slow')).toHaveLength(1);
    expect(await second.stop('SIGTERM')).toBe(0);
  });

  it('past SHUTDOWN_GRACE_MS aborts the callback, records the attempt; the next worker retries the run', async () => {
    const { apiKey } = (await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'grace' } }))
      .body;
    // The only worker: nothing else may take the retry before the test reads the aborted attempt.
    const hasty = await startWorker({ ...env, SHUTDOWN_GRACE_MS: '500' });
    workers.push(hasty);
    const job = await call(api, 'POST', '/v1/jobs', {
      token: apiKey,
      body: {
        name: 'too-slow',
        schedule: { at: new Date(Date.now() + 1_000).toISOString() },
        target: { url: `${sink.url}/slow-grace` },
        retry: { maxAttempts: 3, backoff: { type: 'fixed', delayMs: 100 } },
      },
    });
    expect(job.status).toBe(201);
    const mine = (r: typeof sink.received) => r.filter((x) => x.path === '/slow-grace');
    await sink.waitFor((r) => mine(r).length === 1, 15_000, 'the slow callback to start');

    expect(await hasty.stop('SIGTERM')).toBe(0);
    const afterAbort = await eventually(
      async () => {
        const page = await call(api, 'GET', `/v1/jobs/${job.body.id}/runs`, { token: apiKey });
        return page.body.items[0]?.status === 'retrying' ? page.body.items[0] : undefined;
      },
      5_000,
      'the aborted attempt recorded as retrying',
    );
    expect(afterAbort.attempts).toBe(1);

    const next = await startWorker(env);
    workers.push(next);
    await sink.waitFor((r) => mine(r).length === 2, 15_000, 'the retry from the next worker');
    const [aborted, retried] = mine(sink.received);
    expect(retried!.headers['webhook-id']).toBe(aborted!.headers['webhook-id']);
    expect(retried!.headers['tickwork-attempt']).toBe('2');
    const done = await eventually(
      async () => {
        const page = await call(api, 'GET', `/v1/jobs/${job.body.id}/runs`, { token: apiKey });
        return page.body.items[0]?.status === 'succeeded' ? page.body.items : undefined;
      },
      10_000,
      'the run to succeed on the retry',
    );
    expect(done).toHaveLength(1);
    expect(done[0].attempts).toBe(2);
  });
});

describe('worker shutdown during a Redis outage', () => {
  it('still exits 0 when Redis does not answer', async () => {
    const redis = await startOwnRedis();
    const lonely = await startWorker({ ...env, REDIS_URL: redis.url, SHUTDOWN_GRACE_MS: '2000' });
    workers.push(lonely);
    await redis.stop();
    await eventually(
      async () => {
        const response = await request(`${lonely.url}/health/ready`);
        await response.body.dump();
        return response.statusCode === 503 ? true : undefined;
      },
      10_000,
      'the worker to notice Redis is gone',
    );

    expect(await lonely.stop('SIGTERM')).toBe(0);
    expect(lonely.output.join('')).toContain('Redis did not answer while closing; stopping without it');
  });
});
