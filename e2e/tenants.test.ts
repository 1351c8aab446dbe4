/**
 * Tenants and their limits over real HTTP, on two api processes sharing one database and one
 * Redis: a revoked key fails on both at once, scopes hold, the per-key rate limit is one count
 * across both, another service's ids answer 404 on every id route the OpenAPI document lists,
 * quotas answer 403 naming the quota, and errors from the socket up are problem+json.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  ADMIN_TOKEN,
  call,
  startApi,
  type FleetEnv,
  type Proc,
  deletePrefix,
} from '@tickwork/testkit';

const LIMIT = 30;
let db: TestDatabase;
let env: FleetEnv;
let a: Proc;
let b: Proc;

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_tenants');
  env = {
    DATABASE_URL: db.url,
    REDIS_URL: testBaseUrls().redisUrl,
    BULLMQ_PREFIX: testPrefix(),
    RATE_LIMIT_PER_MINUTE: String(LIMIT),
    CALLBACK_ALLOW_PRIVATE: 'false',
  };
  [a, b] = await Promise.all([startApi(env), startApi(env)]);
});
afterAll(async () => {
  await Promise.allSettled([a?.stop(), b?.stop()]);
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

async function newService(name: string, quotas?: Record<string, number>) {
  const response = await call(a, 'POST', '/v1/admin/services', {
    token: ADMIN_TOKEN,
    body: { name, ...(quotas ? { quotas } : {}) },
  });
  expect(response.status).toBe(201);
  return response.body as { id: string; apiKey: string; apiKeyId: string };
}

const job = (name: string) => ({ name, schedule: { every: '1h' }, target: { url: 'https://example.com/hook' } });

describe('tenants over HTTP on two api processes', () => {
  it('revokes a key on both instances at once', async () => {
    const service = await newService('revoke');
    for (const api of [a, b]) expect((await call(api, 'GET', '/v1/jobs', { token: service.apiKey })).status).toBe(200);
    const revoked = await call(b, 'DELETE', `/v1/admin/services/${service.id}/keys/${service.apiKeyId}`, {
      token: ADMIN_TOKEN,
    });
    expect(revoked.status).toBe(204);
    for (const api of [a, b]) {
      const response = await call(api, 'GET', '/v1/jobs', { token: service.apiKey });
      expect(response.status).toBe(401);
      expect(response.headers['content-type']).toContain('application/problem+json');
    }
  });

  it('holds scopes, and keeps admin routes to the admin token', async () => {
    const service = await newService('scopes');
    const issued = await call(a, 'POST', `/v1/admin/services/${service.id}/keys`, {
      token: ADMIN_TOKEN,
      body: { scopes: ['jobs:read'] },
    });
    expect(issued.status).toBe(201);
    expect(issued.body.scopes).toEqual(['jobs:read']);
    expect((await call(b, 'GET', '/v1/jobs', { token: issued.body.apiKey })).status).toBe(200);
    expect((await call(b, 'POST', '/v1/jobs', { token: issued.body.apiKey, body: job('ro') })).status).toBe(403);
    expect((await call(a, 'GET', '/v1/admin/services', { token: service.apiKey })).status).toBe(403);
  });

  it('counts the rate limit once across both instances, per key', async () => {
    const busy = await newService('busy');
    const quiet = await newService('quiet');
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 2; i++)
      statuses.push((await call(i % 2 ? a : b, 'GET', '/v1/jobs', { token: busy.apiKey })).status);
    expect(statuses.slice(0, LIMIT).every((s) => s === 200)).toBe(true);
    expect(statuses.slice(LIMIT)).toEqual([429, 429]);
    const limited = await call(a, 'GET', '/v1/jobs', { token: busy.apiKey });
    expect(limited.status).toBe(429);
    expect(limited.headers['content-type']).toContain('application/problem+json');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.headers['ratelimit-limit']).toBe(String(LIMIT));
    expect((await call(b, 'GET', '/v1/jobs', { token: quiet.apiKey })).status).toBe(200);
  });

  it("answers 404 for another service's job and run on every id route of the OpenAPI document", async () => {
    const owner = await newService('owner');
    const stranger = await newService('stranger');
    const created = await call(a, 'POST', '/v1/jobs', { token: owner.apiKey, body: job('owned') });
    expect(created.status).toBe(201);
    const jobId = created.body.id as string;
    const calendar = await call(a, 'POST', '/v1/calendars', { token: owner.apiKey, body: { name: 'owned' } });
    expect(calendar.status).toBe(201);
    const spec = await call(b, 'GET', '/openapi.json');
    // An alert of the owner's job, as the watch would have opened it.
    const alertId = '0190a0a0-0000-7000-8000-00000000a1e7';
    await db.db
      .insertInto('alerts')
      .values({ id: alertId, service_id: owner.id, job_id: jobId, scheduled_for: new Date(), reason: 'not_fired' })
      .execute();
    const ids: Record<string, string> = {
      jobs: jobId,
      runs: '0190a0a0-0000-7000-8000-000000000000',
      calendars: calendar.body.id,
      alerts: alertId,
    };
    const tried: string[] = [];
    for (const [path, operations] of Object.entries(spec.body.paths as Record<string, Record<string, unknown>>)) {
      if (!path.startsWith('/v1/') || path.startsWith('/v1/admin') || !path.includes('{')) continue;
      const segments = path.split('/');
      const url = segments.map((s, i) => (s.startsWith('{') ? (ids[segments[i - 1]!] ?? s) : s)).join('/');
      for (const method of Object.keys(operations).map((m) => m.toUpperCase())) {
        if (!['GET', 'POST', 'PATCH', 'DELETE', 'PUT'].includes(method)) continue;
        const response = await call(a, method as 'GET', url, {
          token: stranger.apiKey,
          ...(method === 'POST' || method === 'PATCH' || method === 'PUT' ? { body: {} } : {}),
        });
        tried.push(`${method} ${path} ${response.status}`);
      }
    }
    expect(tried.length).toBeGreaterThanOrEqual(4);
    // A write route may refuse the empty body first (400); none may act on, or reveal, the job.
    for (const line of tried) expect(line).toMatch(/ (404|400)$/);
    expect(tried.filter((t) => t.startsWith('GET ') || t.startsWith('DELETE ')).every((t) => t.endsWith(' 404'))).toBe(
      true,
    );
    expect((await call(b, 'GET', `/v1/jobs/${jobId}`, { token: owner.apiKey })).status).toBe(200);
    expect((await call(b, 'GET', `/v1/calendars/${calendar.body.id}`, { token: owner.apiKey })).status).toBe(200);
  });

  it('answers quotas with 403 naming the quota', async () => {
    const service = await newService('quota', { maxJobs: 1 });
    expect((await call(a, 'POST', '/v1/jobs', { token: service.apiKey, body: job('one') })).status).toBe(201);
    const second = await call(b, 'POST', '/v1/jobs', { token: service.apiKey, body: job('two') });
    expect(second.status).toBe(403);
    expect(second.body).toMatchObject({ code: 'quota_exceeded', quota: 'maxJobs' });
  });

  it('answers every error as problem+json over the socket: 404, 405, 413, 415', async () => {
    const service = await newService('errors');
    const send = async (method: string, path: string, body?: string, contentType = 'application/json') => {
      const response = await request(`${a.url}${path}`, {
        method: method as 'GET',
        headers: {
          authorization: `Bearer ${service.apiKey}`,
          ...(body === undefined ? {} : { 'content-type': contentType }),
        },
        body,
      });
      const text = await response.body.text();
      return { status: response.statusCode, type: String(response.headers['content-type']), problem: JSON.parse(text) };
    };
    const results = [
      await send('GET', '/v1/no-such-thing'),
      await send('PUT', '/v1/jobs', '{}'),
      await send('POST', '/v1/jobs', JSON.stringify({ ...job('big'), description: 'x'.repeat(70_000) })),
      await send('POST', '/v1/jobs', 'name=x', 'application/x-www-form-urlencoded'),
    ];
    expect(results.map((r) => r.status)).toEqual([404, 405, 413, 415]);
    for (const result of results) {
      expect(result.type).toContain('application/problem+json');
      expect(result.problem).toMatchObject({
        status: result.status,
        type: expect.any(String),
        title: expect.any(String),
        detail: expect.any(String),
      });
    }
  });
});
