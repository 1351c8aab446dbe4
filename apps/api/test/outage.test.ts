/**
 * The api when Postgres goes away (through a TCP proxy of this file's own, so the shared server
 * keeps running): every request answers 503 problem+json within a second, /health/ready names
 * Postgres, no scheduler is left in Redis, and all is well again once Postgres answers. Also: a job whose
 * commit fails after Redis accepted its schedule leaves no scheduler behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InjectOptions } from 'fastify';
import { sql } from 'kysely';
import {
  createTestDatabase,
  startTcpProxy,
  testBaseUrls,
  testPrefix,
  type TcpProxy,
  type TestDatabase,
} from '@tickwork/testkit';
import { buildServer } from '../src/build.ts';
import { ADMIN_TOKEN, deletePrefix, testServerConfig } from './helpers.ts';

let db: TestDatabase;
let proxy: TcpProxy;
let prefix: string;
let app: Awaited<ReturnType<typeof buildServer>>;
let apiKey: string;

beforeAll(async () => {
  db = await createTestDatabase('tw_outage');
  const target = new URL(db.url);
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  prefix = testPrefix();
  app = await buildServer(
    testServerConfig(proxy.urlThrough(db.url), testBaseUrls().redisUrl, prefix, {
      callbackAllowPrivate: true,
      // The key's principal is cached, so requests during the outage pass authentication and are
      // counted by the limiter: the loop below sends more than the default 1200 a minute.
      rateLimitPerMinute: 1_000_000,
    }),
  );
  await app.ready();
  const service = await app.inject({
    method: 'POST',
    url: '/v1/admin/services',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    payload: { name: 'outage' },
  });
  apiKey = service.json().apiKey;
});

afterAll(async () => {
  await proxy?.restore();
  await app?.close();
  await proxy?.close();
  await db?.drop();
  if (prefix) await deletePrefix(testBaseUrls().redisUrl, prefix);
});

const auth = () => ({ authorization: `Bearer ${apiKey}` });
const aJob = (name: string) => ({ name, schedule: { every: '1m' }, target: { url: 'http://127.0.0.1:9/hook' } });

async function timed(request: InjectOptions) {
  const started = performance.now();
  const response = await app.inject(request);
  return { response, ms: performance.now() - started };
}

describe('Postgres outage', () => {
  it('answers 503 problem+json within 1 s throughout, names Postgres in /health/ready, changes nothing', async () => {
    const created = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: aJob('before') });
    expect(created.statusCode).toBe(201);
    const schedulersBefore = await app.fireQueue.queue.getJobSchedulersCount();

    await proxy.cut();
    const outageEnds = Date.now() + 4_000;
    let sent = 0;
    while (Date.now() < outageEnds) {
      const requests: InjectOptions[] = [
        { method: 'GET' as const, url: `/v1/jobs/${created.json().id}`, headers: auth() },
        { method: 'GET' as const, url: '/v1/jobs', headers: auth() },
        { method: 'POST' as const, url: '/v1/jobs', headers: auth(), payload: aJob(`during-${sent}`) },
      ];
      for (const request of requests) {
        const { response, ms } = await timed(request);
        sent++;
        expect(response.statusCode).toBe(503);
        expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(response.headers['retry-after']).toBeDefined();
        expect(response.json()).toMatchObject({ status: 503, code: 'unavailable' });
        expect(ms).toBeLessThan(1_000);
      }
      const { response: ready, ms } = await timed({ method: 'GET', url: '/health/ready' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json().checks.postgres.status).toBe('down');
      expect(ready.json().checks.redis.status).toBe('ok');
      expect(ms).toBeLessThan(1_500);
    }
    expect(sent).toBeGreaterThan(10);
    expect(await app.fireQueue.queue.getJobSchedulersCount()).toBe(schedulersBefore);

    await proxy.restore();
    const deadline = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < deadline && status !== 200) {
      status = (await app.inject({ method: 'GET', url: `/v1/jobs/${created.json().id}`, headers: auth() })).statusCode;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
    const list = await app.inject({ method: 'GET', url: '/v1/jobs?limit=100', headers: auth() });
    expect(list.json().items.map((j: { name: string }) => j.name)).toEqual(['before']);
    // A 4 s outage and up to 10 s to recover: vitest's default 5 s cut it off on a busy box.
  }, 20_000);

  it('leaves no scheduler behind when the commit fails after Redis accepted the schedule', async () => {
    // A deferred constraint trigger fails the commit itself, after the insert and the Redis call.
    await sql`
      CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.name = 'fails-at-commit' THEN RAISE EXCEPTION 'refused at commit'; END IF;
        RETURN NULL;
      END $$`.execute(db.db);
    await sql`
      CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON jobs
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()`.execute(db.db);
    try {
      const before = await app.fireQueue.queue.getJobSchedulersCount();
      const response = await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: auth(),
        payload: aJob('fails-at-commit'),
      });
      expect(response.statusCode).toBeGreaterThanOrEqual(500);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(await app.fireQueue.queue.getJobSchedulersCount()).toBe(before);
      const rows = await sql<{ n: number }>`select count(*)::int as n from jobs where name = 'fails-at-commit'`.execute(
        db.db,
      );
      expect(rows.rows[0]!.n).toBe(0);
    } finally {
      await sql`DROP TRIGGER refuse_at_commit ON jobs`.execute(db.db);
      await sql`DROP FUNCTION refuse_at_commit()`.execute(db.db);
    }
  });
});
