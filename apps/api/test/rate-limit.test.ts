/**
 * The per-key rate limit is counted in Redis, so it holds across api instances, and one key's
 * burst leaves every other key's allowance alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { buildServer } from '../src/build.ts';
import { anotherInstance, startTestApi, type TestApi } from './helpers.ts';

const LIMIT = 6;
let api: TestApi;
let second: Awaited<ReturnType<typeof buildServer>>;

beforeAll(async () => {
  api = await startTestApi({ rateLimitPerMinute: LIMIT });
  second = await anotherInstance(api, { rateLimitPerMinute: LIMIT });
  await second.ready();
});
afterAll(async () => {
  await second?.close();
  await api?.close();
});

describe('rate limit per API key', () => {
  it('counts across two api instances; 429 problem+json, Retry-After, RateLimit-*; spares other keys', async () => {
    const busy = await api.newService('busy');
    const quiet = await api.newService('quiet');
    const instances = [api.app, second];
    for (let i = 0; i < LIMIT; i++) {
      const response = await instances[i % 2]!.inject({
        method: 'GET',
        url: '/v1/jobs',
        headers: { authorization: `Bearer ${busy.apiKey}` },
      });
      expect(response.statusCode, `request ${i + 1}`).toBe(200);
      expect(response.headers['ratelimit-limit']).toBe(String(LIMIT));
      expect(response.headers['ratelimit-remaining']).toBe(String(LIMIT - i - 1));
    }
    for (const instance of instances) {
      const limited = await instance.inject({
        method: 'GET',
        url: '/v1/jobs',
        headers: { authorization: `Bearer ${busy.apiKey}` },
      });
      expect(limited.statusCode).toBe(429);
      expect(limited.headers['content-type']).toContain('application/problem+json');
      expect(limited.json()).toMatchObject({ status: 429, code: 'rate_limited' });
      const retryAfter = Number(limited.headers['retry-after']);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(limited.headers['ratelimit-remaining']).toBe('0');
      expect(Number(limited.headers['ratelimit-reset'])).toBeGreaterThan(0);
    }
    // A write is refused whole while limited.
    const write = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${busy.apiKey}` },
      payload: { name: 'limited', schedule: { every: '1m' }, target: { url: 'https://example.com' } },
    });
    expect(write.statusCode).toBe(429);
    expect(await api.db.db.selectFrom('jobs').select('id').where('service_id', '=', busy.id).execute()).toHaveLength(0);

    const other = await second.inject({
      method: 'GET',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${quiet.apiKey}` },
    });
    expect(other.statusCode).toBe(200);
    expect(other.headers['ratelimit-remaining']).toBe(String(LIMIT - 1));
    // Requests without a key are not counted against anyone (and health is never limited).
    for (let i = 0; i < LIMIT + 2; i++)
      expect((await api.app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
  });
});
