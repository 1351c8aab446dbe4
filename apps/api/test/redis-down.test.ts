import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testPrefix, type TestDatabase, freePort } from '@tickwork/testkit';
import { buildServer } from '../src/build.ts';
import { ADMIN_TOKEN, testServerConfig } from './helpers.ts';

let db: TestDatabase;
let app: Awaited<ReturnType<typeof buildServer>>;

beforeAll(async () => {
  db = await createTestDatabase('tw_api_redisdown');
  app = await buildServer(testServerConfig(db.url, `redis://127.0.0.1:${await freePort()}`, testPrefix()));
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('with Redis down', () => {
  it('answers a create with 503 problem+json and leaves nothing behind in Postgres', async () => {
    const service = await app.inject({
      method: 'POST',
      url: '/v1/admin/services',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { name: 'no-redis' },
    });
    expect(service.statusCode).toBe(201);
    const started = Date.now();
    const response = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${service.json().apiKey}` },
      payload: { name: 'orphan', schedule: { every: '1m' }, target: { url: 'https://example.com/hook' } },
    });
    expect(response.statusCode).toBe(503);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.headers['retry-after']).toBeDefined();
    expect(response.json()).toMatchObject({ status: 503, code: 'unavailable' });
    // Bounded: the request gave up on Redis instead of hanging (the budget is 2 s).
    expect(Date.now() - started).toBeLessThan(10_000);
    const rows = await db.db.selectFrom('jobs').selectAll().execute();
    expect(rows).toEqual([]);
  });

  it('needs no Redis to authenticate or to revoke: the revoke answers 204 and holds at once', async () => {
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const service = await app.inject({
      method: 'POST',
      url: '/v1/admin/services',
      headers: admin,
      payload: { name: 'no-redis-auth' },
    });
    const headers = { authorization: `Bearer ${service.json().apiKey}` };
    for (let i = 0; i < 2; i++)
      expect((await app.inject({ method: 'GET', url: '/v1/jobs', headers })).statusCode).toBe(200);
    const keyId = (
      await app.inject({ method: 'GET', url: `/v1/admin/services/${service.json().id}`, headers: admin })
    ).json().keys[0].id;
    // Principals are kept true by Postgres notifications, not by Redis.
    const revoked = await app.inject({
      method: 'DELETE',
      url: `/v1/admin/services/${service.json().id}/keys/${keyId}`,
      headers: admin,
    });
    expect(revoked.statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: '/v1/jobs', headers })).statusCode).toBe(401);
  });

  it('reports not ready, naming Redis', async () => {
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({
      status: 'unavailable',
      checks: { postgres: { status: 'ok' }, redis: { status: 'down' } },
    });
  });
});
