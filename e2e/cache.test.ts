/**
 * The in-process caches of the api (keys and job rows), on two real api processes sharing one
 * database and a Redis of this test's own: a change made through one instance is seen through
 * the other as soon as it answers (even by an instance that hears of it late: a third one reaches
 * Postgres through a proxy this test holds), one made straight in Postgres within one second; a
 * read of a cached job sends Redis nothing; and the per-key rate limit, spent from leases of each instance's own, still refuses
 * a key within 10% of its limit across both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import {
  ADMIN_TOKEN,
  call,
  createTestDatabase,
  freePort,
  startApi,
  startTcpProxy,
  testPrefix,
  type FleetEnv,
  type Proc,
  type TcpProxy,
  type TestDatabase,
} from '@tickwork/testkit';

const LIMIT = 1_000;
let db: TestDatabase;
let redisServer: ChildProcess;
let redis: Redis;
let env: FleetEnv;
let a: Proc;
let b: Proc;
/** An instance whose Postgres connections (its notifications too) pass through `proxy`. */
let c: Proc;
let proxy: TcpProxy;

beforeAll(async () => {
  const port = await freePort();
  redisServer = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  redis = new Redis({ port, host: '127.0.0.1', retryStrategy: () => 50, maxRetriesPerRequest: null });
  redis.on('error', () => {});
  await redis.ping();
  db = await createTestDatabase('tw_e2e_cache');
  env = {
    DATABASE_URL: db.url,
    REDIS_URL: `redis://127.0.0.1:${port}`,
    BULLMQ_PREFIX: testPrefix(),
    RATE_LIMIT_PER_MINUTE: String(LIMIT),
    LOG_LEVEL: 'warn',
  };
  const target = new URL(db.url);
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  [a, b, c] = await Promise.all([
    startApi(env),
    startApi(env),
    startApi({ ...env, DATABASE_URL: proxy.urlThrough(db.url) }),
  ]);
});
afterAll(async () => {
  proxy?.release();
  await Promise.allSettled([a?.stop(), b?.stop(), c?.stop()]);
  await proxy?.close();
  await db?.drop();
  redis?.disconnect();
  if (redisServer && redisServer.exitCode === null) {
    redisServer.kill('SIGKILL');
    await once(redisServer, 'exit');
  }
});

async function newService(name: string) {
  const response = await call(a, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name } });
  expect(response.status).toBe(201);
  return response.body as { id: string; apiKey: string; apiKeyId: string };
}

const job = (name: string) => ({ name, schedule: { every: '1h' }, target: { url: 'https://example.com/hook' } });

/** Polls `check` until it holds; the time it took, failing past `deadlineMs`. */
async function within(deadlineMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > deadlineMs) throw new Error(`not within ${deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return performance.now() - started;
}

describe('caches on two api processes', () => {
  it('shows the other instance a new version and a delete once they answer, a worker-side change within 1 s', async () => {
    const service = await newService('cache-jobs');
    const created = await call(a, 'POST', '/v1/jobs', { token: service.apiKey, body: job('cached') });
    expect(created.status).toBe(201);
    const path = `/v1/jobs/${created.body.id}`;
    const onB = () => call(b, 'GET', path, { token: service.apiKey });
    // Cached on B.
    for (let i = 0; i < 3; i++) expect((await onB()).body.version).toBe(1);

    const patched = await call(a, 'PATCH', path, { token: service.apiKey, body: { description: 'second' } });
    expect(patched.status).toBe(200);
    // The instance that changed it answers the new version from its next read on.
    expect((await call(a, 'GET', path, { token: service.apiKey })).body.version).toBe(2);
    // And so does the other: the change answered once B had dropped its row.
    expect((await onB()).body.version).toBe(2);

    // What a worker writes per occurrence keeps the version and sends no notification: the
    // cached row is at most a second old.
    for (let i = 0; i < 3; i++) expect((await onB()).body.runCount).toBe(0);
    await sql`UPDATE jobs SET run_count = 7 WHERE id = ${created.body.id}`.execute(db.db);
    await within(1_500, async () => (await onB()).body.runCount === 7);

    expect((await call(a, 'DELETE', path, { token: service.apiKey })).status).toBe(204);
    expect((await onB()).status).toBe(404);
    // Another service's id is a 404 from a warm cache too.
    const other = await newService('cache-other');
    const mine = await call(a, 'POST', '/v1/jobs', { token: service.apiKey, body: job('mine') });
    expect((await call(b, 'GET', `/v1/jobs/${mine.body.id}`, { token: service.apiKey })).status).toBe(200);
    expect((await call(b, 'GET', `/v1/jobs/${mine.body.id}`, { token: other.apiKey })).status).toBe(404);
  });

  it('never answers the old row after a change answered, through an instance that hears of it late', async () => {
    const service = await newService('cache-late');
    const created = await call(a, 'POST', '/v1/jobs', { token: service.apiKey, body: job('late') });
    const path = `/v1/jobs/${created.body.id}`;
    // Cached on C, with the key's principal.
    for (let i = 0; i < 3; i++) expect((await call(c, 'GET', path, { token: service.apiKey })).body.version).toBe(1);
    // C now hears nothing from Postgres: neither the change's notification nor the barrier.
    proxy.hold();
    try {
      const patched = await call(a, 'PATCH', path, { token: service.apiKey, body: { description: 'second' } });
      expect(patched.status).toBe(200);
      const read = call(c, 'GET', path, { token: service.apiKey });
      // Answered from C's cache at once, it would be version 1; the row C kept is too old to be
      // answered, so C asks Postgres, whose answer waits for the release.
      const early = await Promise.race([
        read,
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 300)),
      ]);
      if (early) expect(early.body.version).toBe(2);
      proxy.release();
      expect((await read).body.version).toBe(2);
    } finally {
      proxy.release();
    }
  });

  it('revokes a key on the other instance before the revoke answers, its principal cached', async () => {
    const service = await newService('cache-revoke');
    for (let i = 0; i < 3; i++) expect((await call(b, 'GET', '/v1/jobs', { token: service.apiKey })).status).toBe(200);
    const revoked = await call(a, 'DELETE', `/v1/admin/services/${service.id}/keys/${service.apiKeyId}`, {
      token: ADMIN_TOKEN,
    });
    expect(revoked.status).toBe(204);
    expect((await call(b, 'GET', '/v1/jobs', { token: service.apiKey })).status).toBe(401);
  });

  it('sends Redis nothing for reads of a cached job', async () => {
    const service = await newService('cache-redis');
    const created = await call(a, 'POST', '/v1/jobs', { token: service.apiKey, body: job('quiet') });
    const path = `/v1/jobs/${created.body.id}`;
    // Warm: the key's principal and the job's row cached, and a lease of the rate limit taken.
    expect((await call(b, 'GET', path, { token: service.apiKey })).status).toBe(200);
    const commands = async () => {
      const info = await redis.info('stats');
      return Number(/total_commands_processed:(\d+)/.exec(info)?.[1]);
    };
    const before = await commands();
    // 9 reads: within the lease of 10 the first read took.
    for (let i = 0; i < 9; i++) expect((await call(b, 'GET', path, { token: service.apiKey })).status).toBe(200);
    const after = await commands();
    // The INFO of `before` itself is the one command counted in between.
    expect(after - before).toBe(1);
  });

  it('refuses a key over its limit across both instances within 10% of the limit', async () => {
    const service = await newService('cache-limit');
    let admitted = 0;
    let refused = 0;
    const instances = [a, b];
    await Promise.all(
      Array.from({ length: 8 }, async (_, lane) => {
        for (let i = 0; i < 150; i++) {
          const response = await call(instances[(lane + i) % 2]!, 'GET', '/v1/jobs?limit=1', {
            token: service.apiKey,
          });
          if (response.status === 200) admitted++;
          else if (response.status === 429) refused++;
        }
      }),
    );
    expect(admitted + refused).toBe(1_200);
    expect(admitted).toBeLessThanOrEqual(LIMIT);
    expect(admitted).toBeGreaterThanOrEqual(LIMIT * 0.9);
  });
});
