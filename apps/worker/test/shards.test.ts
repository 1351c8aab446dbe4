/**
 * A worker with the fire queue in shards, on a Redis of the test's own: it consumes every shard
 * (one BullMQ worker each), or the subset FIRE_QUEUE_CONSUME names; a queue of an earlier shard
 * count that Redis still lists is consumed too. And the settings themselves, as loadConfig reads them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { ConfigError, loadConfig } from '@tickwork/core';
import { FireQueue, fireQueueNamesOf } from '@tickwork/queue';
import { createTestDatabase, startOwnRedis, testPrefix, type OwnRedis, type TestDatabase } from '@tickwork/testkit';
import { startWorker, type WorkerConfig } from '../src/worker.ts';

let db: TestDatabase;
let redis: OwnRedis;

beforeAll(async () => {
  [db, redis] = await Promise.all([createTestDatabase('tw_worker_shards'), startOwnRedis()]);
});
afterAll(async () => {
  await redis?.stop();
  await db?.drop();
});

const configOf = (prefix: string, extra: Partial<WorkerConfig>): WorkerConfig => ({
  databaseUrl: db.url,
  databasePoolMax: 4,
  redisUrl: redis.url,
  bullmqPrefix: prefix,
  workerConcurrency: 6,
  callbackAllowPrivate: true,
  callbackAllowedHosts: [],
  secretKey: 'test-secret-key-0123456789-0123456789',
  shutdownGraceMs: 1_000,
  reconcileIntervalMs: 60_000,
  reconcileSweepIntervalMs: 600_000,
  runRetentionDays: 30,
  ...extra,
});

describe('a worker with FIRE_QUEUE_SHARDS', () => {
  it('consumes every shard, or the subset it is given, and the queues of an earlier count Redis lists', async () => {
    const prefix = testPrefix();
    const three = fireQueueNamesOf({ prefix, shards: 3 });
    // Another count was in use before: its queue is listed, so this worker consumes it too.
    const before = new FireQueue({ redisUrl: redis.url, prefix, shards: 2 });
    await before.ping();
    await before.announce();
    const two = fireQueueNamesOf({ prefix, shards: 2 });

    const all = await startWorker(configOf(prefix, { fireQueueShards: 3 }), pino({ level: 'silent' }));
    try {
      expect(all.workers.map((w) => w.name)).toEqual([...three, ...[...two].sort()]);
      // WORKER_CONCURRENCY is split over the queues it consumes: 6 over 5, rounded up.
      expect(all.workers.map((w) => w.concurrency)).toEqual([2, 2, 2, 2, 2]);
      expect(await all.isReady()).toMatchObject({ redis: true, postgres: true });
    } finally {
      await all.close();
    }
    // Empty, they may have been forgotten by the first worker's reconciler since: listed again.
    await before.announce();
    await before.close();
    const subset = await startWorker(
      configOf(prefix, { fireQueueShards: 3, fireQueueConsume: [1] }),
      pino({ level: 'silent' }),
    );
    try {
      expect(subset.workers.map((w) => w.name)).toEqual([three[1], ...[...two].sort()]);
    } finally {
      await subset.close();
    }
  }, 30_000);

  it('reads REDIS_CLUSTER_NODES, FIRE_QUEUE_SHARDS and FIRE_QUEUE_CONSUME, naming each bad value', () => {
    const config = loadConfig({
      REDIS_CLUSTER_NODES: '10.0.0.1:6379, redis-2.internal:7000,[::1]:6380',
      FIRE_QUEUE_SHARDS: '4',
      FIRE_QUEUE_CONSUME: '3,0,3',
    });
    expect(config.redisClusterNodes).toEqual(['10.0.0.1:6379', 'redis-2.internal:7000', '[::1]:6380']);
    expect(config.fireQueueShards).toBe(4);
    expect(config.fireQueueConsume).toEqual([0, 3]);
    expect(loadConfig({})).toMatchObject({
      redisClusterNodes: undefined,
      fireQueueShards: 1,
      fireQueueConsume: undefined,
    });

    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        if (error instanceof ConfigError) return error.problems;
        throw error;
      }
      return [];
    };
    expect(problems({ REDIS_CLUSTER_NODES: 'redis-1' })).toEqual([
      'REDIS_CLUSTER_NODES entries are host:port (got "redis-1")',
    ]);
    expect(problems({ FIRE_QUEUE_SHARDS: '0' })).toEqual([
      'FIRE_QUEUE_SHARDS must be a whole number from 1 to 256 (got "0")',
    ]);
    expect(problems({ FIRE_QUEUE_SHARDS: '2', FIRE_QUEUE_CONSUME: '2' })).toEqual([
      'FIRE_QUEUE_CONSUME lists shards 0 to 1, comma-separated (got "2")',
    ]);
  });
});
