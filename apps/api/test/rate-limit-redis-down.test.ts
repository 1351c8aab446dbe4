/**
 * The rate limiter with its Redis gone: requests that do not need Redis are still answered
 * (uncounted, with no made-up RateLimit headers), and those that do get a bounded 503 that
 * changes nothing. Uses a redis-server of its own, never the shared one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startTestApi, type TestApi } from './helpers.ts';
import { freePort } from '@tickwork/testkit';

async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms`);
}

let redis: ChildProcess;
let redisPort: number;
let redisUrl: string;
let api: TestApi;

async function startRedis(): Promise<void> {
  redis = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const probe = new Redis(redisUrl, { retryStrategy: () => 50, maxRetriesPerRequest: null });
  probe.on('error', () => {});
  await probe.ping();
  probe.disconnect();
}

beforeAll(async () => {
  redisPort = await freePort();
  redisUrl = `redis://127.0.0.1:${redisPort}`;
  await startRedis();
  api = await startTestApi({ redisUrl, rateLimitPerMinute: 1000 });
});
afterAll(async () => {
  await api?.close();
  if (redis && redis.exitCode === null && redis.signalCode === null) {
    redis.kill('SIGKILL');
    await once(redis, 'exit');
  }
});

describe('rate limit when Redis is down', () => {
  it('answers reads uncounted and writes with 503, within bounds', async () => {
    const service = await api.newService('redis-down');
    const headers = { authorization: `Bearer ${service.apiKey}` };
    const before = await api.app.inject({ method: 'GET', url: '/v1/jobs', headers });
    expect(before.statusCode).toBe(200);
    expect(before.headers['ratelimit-remaining']).toBe('999');

    const exited = once(redis, 'exit');
    redis.kill('SIGKILL');
    await exited;

    // The instance leased 10 of the 1000 with the first request (`leaseOf`): it spends the 9 left
    // counted, then answers uncounted, without RateLimit headers that would say otherwise.
    const remaining: Array<string | undefined> = [];
    for (let i = 0; i < 11; i++) {
      const read = await api.app.inject({ method: 'GET', url: '/v1/jobs', headers });
      expect(read.statusCode).toBe(200);
      remaining.push(read.headers['ratelimit-remaining'] as string | undefined);
    }
    expect(remaining).toEqual(['998', '997', '996', '995', '994', '993', '992', '991', '990', undefined, undefined]);
    const write = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers,
      payload: { name: 'no-redis', schedule: { every: '1m' }, target: { url: 'https://example.com' } },
    });
    expect(write.statusCode).toBe(503);
    expect(write.headers['content-type']).toContain('application/problem+json');
    expect(write.headers['retry-after']).toBeDefined();
    expect(await api.db.db.selectFrom('jobs').select('id').execute()).toHaveLength(0);

    // Back again: counted again (BullMQ's queue cannot close cleanly without its Redis either).
    await startRedis();
    const counted = await eventually(async () => {
      const response = await api.app.inject({ method: 'GET', url: '/v1/jobs', headers });
      return response.headers['ratelimit-remaining'] === undefined ? undefined : response;
    });
    expect(Number(counted.headers['ratelimit-remaining'])).toBeLessThan(1000);
  });
});
