/**
 * /metrics while Redis goes away: the scrape still answers, readiness drops, no stale depth;
 * and the api still closes cleanly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  testPrefix,
  type TestDatabase,
  parseExposition,
  sampleValue,
  startOwnRedis,
  type OwnRedis,
} from '@tickwork/testkit';
import { buildServer } from '../src/build.ts';
import { testServerConfig } from './helpers.ts';

let db: TestDatabase;
let redis: OwnRedis;
let app: Awaited<ReturnType<typeof buildServer>>;

beforeAll(async () => {
  [db, redis] = await Promise.all([createTestDatabase('tw_api_metrics_down'), startOwnRedis()]);
  app = await buildServer(testServerConfig(db.url, redis.url, testPrefix()));
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await redis?.stop();
  await db?.drop();
});

async function scrape() {
  const response = await app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode).toBe(200);
  return parseExposition(response.body);
}

describe('/metrics with Redis down', () => {
  it('keeps answering, reports not ready, and drops the queue depth rather than show a stale one', async () => {
    const before = await scrape();
    expect(sampleValue(before, 'tickwork_ready')).toBe(1);
    expect(sampleValue(before, 'tickwork_queue_jobs', { state: 'waiting' })).toBe(0);

    await redis.stop();

    const after = await (async () => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const families = await scrape();
        if (sampleValue(families, 'tickwork_queue_jobs', { state: 'waiting' }) === undefined) return families;
        if (Date.now() > deadline) throw new Error('the queue depth outlived Redis');
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    expect(sampleValue(after, 'tickwork_ready')).toBe(0);
    expect(sampleValue(after, 'tickwork_schedulers')).toBeNaN();
    expect(sampleValue(after, 'tickwork_db_pool_waiting')).toBe(0);
    expect(
      sampleValue(after, 'http_request_duration_seconds_count', { route: '/metrics', status_code: '200' }),
    ).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('closes without an error while Redis is down', async () => {
    await expect(app.close()).resolves.toBeUndefined();
  });
});
