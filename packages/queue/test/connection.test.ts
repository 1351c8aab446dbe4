/** A process's Redis connections, against the shared Redis: auto-pipelining only when asked, and BullMQ works on it. */
import { afterAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { deletePrefix, eventually, testBaseUrls, testPrefix } from '@tickwork/testkit';
import { createRedisConnections } from '../src/connection.ts';

const prefix = testPrefix();
afterAll(async () => {
  await deletePrefix(testBaseUrls().redisUrl, prefix);
});

describe('createRedisConnections', () => {
  it('leaves auto-pipelining off unless asked', async () => {
    const redis = createRedisConnections({ redis: testBaseUrls().redisUrl, prefix, name: 'test-default' });
    try {
      expect((redis.shared as Redis).options.enableAutoPipelining).toBeFalsy();
      expect((redis.failFast as Redis).options.enableAutoPipelining).toBeFalsy();
    } finally {
      await redis.close();
    }
  });

  it('auto-pipelines the shared connection when asked, and a Worker on it completes every job', async () => {
    const redis = createRedisConnections({
      redis: testBaseUrls().redisUrl,
      prefix,
      name: 'test-pipelined',
      autoPipelining: true,
    });
    const shared = redis.shared as Redis;
    expect(shared.options.enableAutoPipelining).toBe(true);
    // The fail-fast connection (probes, the reconciler) is not the one the Workers' commands share.
    expect((redis.failFast as Redis).options.enableAutoPipelining).toBeFalsy();
    const queue = redis.queue<{ i: number }>('pipelined');
    const seen = new Set<number>();
    const worker = redis.worker<{ i: number }>(
      'pipelined',
      async (job) => {
        seen.add(job.data.i);
        return job.data.i;
      },
      { concurrency: 10 },
    );
    try {
      await worker.waitUntilReady();
      // Commands sent in one turn of the event loop wait for the same write.
      const pings = [shared.ping(), shared.ping(), shared.ping()];
      expect(shared.autoPipelineQueueSize).toBeGreaterThan(0);
      expect(await Promise.all(pings)).toEqual(['PONG', 'PONG', 'PONG']);
      await queue.addBulk(Array.from({ length: 50 }, (_, i) => ({ name: 'n', data: { i } })));
      await eventually(async () => ((await queue.getCompletedCount()) === 50 ? true : undefined), 15_000, '50 done');
      expect(seen.size).toBe(50);
    } finally {
      await worker.close();
      await queue.close();
      await redis.close();
    }
  });
});
