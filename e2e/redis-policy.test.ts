/** Both processes warn at start, in their JSON log, when Redis may evict keys. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  testPrefix,
  type TestDatabase,
  startOwnRedis,
  type OwnRedis,
  startApi,
  startWorker,
  type Proc,
  eventually,
  logLinesOf,
} from '@tickwork/testkit';
import { EVICTION_WARNING } from '@tickwork/queue';

let db: TestDatabase;
let redis: OwnRedis;
let api: Proc;
let worker: Proc;

beforeAll(async () => {
  [db, redis] = await Promise.all([
    createTestDatabase('tw_e2e_evict'),
    startOwnRedis(['--maxmemory-policy', 'allkeys-lru']),
  ]);
  const env = { DATABASE_URL: db.url, REDIS_URL: redis.url, BULLMQ_PREFIX: testPrefix() };
  [api, worker] = await Promise.all([startApi(env), startWorker(env)]);
});
afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await redis?.stop();
  await db?.drop();
});

function warningIn(proc: Proc) {
  return logLinesOf(proc).find((line) => line.msg === EVICTION_WARNING);
}

describe('Redis eviction policy check at start', () => {
  it.each([
    ['api', () => api],
    ['worker', () => worker],
  ])('the %s logs a warning naming maxmemory-policy', async (_name, proc) => {
    const line = await eventually(async () => warningIn(proc()), 10_000, 'the eviction warning');
    expect(line).toMatchObject({
      level: 40,
      setting: 'maxmemory-policy',
      actual: 'allkeys-lru',
      expected: 'noeviction',
    });
  });
});
