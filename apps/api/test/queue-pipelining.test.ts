/**
 * The api's queue connection auto-pipelines (a single Redis): concurrent creates share socket
 * writes, and every one of them still lands its own schedule. `TICKWORK_REDIS_AUTOPIPELINE=off`
 * turns it off.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { anotherInstance, startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let queue: Queue;
let observer: Redis;

beforeAll(async () => {
  api = await startTestApi();
  observer = new Redis(api.redisUrl, { maxRetriesPerRequest: null });
  queue = new Queue('fire', { connection: observer, prefix: api.prefix });
});
afterAll(async () => {
  await queue?.close();
  observer?.disconnect();
  await api?.close();
});

describe("the api's queue connection", () => {
  it('auto-pipelines by default, and 40 creates at once each register their own schedule', async () => {
    const redis = api.app.fireQueue.redis as Redis;
    expect(redis.options.enableAutoPipelining).toBe(true);
    const { apiKey } = await api.newService('pipelined');
    const created = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        api.app.inject({
          method: 'POST',
          url: '/v1/jobs',
          headers: { authorization: `Bearer ${apiKey}` },
          payload: {
            name: `p-${i}`,
            schedule: { everyMs: 60_000 + i * 1_000 },
            target: { url: 'https://example.com/h' },
          },
        }),
      ),
    );
    expect(created.map((r) => r.statusCode)).toEqual(created.map(() => 201));
    for (const [i, response] of created.entries()) {
      const scheduler = await queue.getJobScheduler(`job:${response.json().id}:v1`);
      expect(scheduler?.every).toBe(60_000 + i * 1_000);
    }
  });

  it('is a plain connection with TICKWORK_REDIS_AUTOPIPELINE=off', async () => {
    const before = process.env.TICKWORK_REDIS_AUTOPIPELINE;
    process.env.TICKWORK_REDIS_AUTOPIPELINE = 'off';
    let other: Awaited<ReturnType<typeof anotherInstance>> | undefined;
    try {
      other = await anotherInstance(api);
      await other.ready();
      expect((other.fireQueue.redis as Redis).options.enableAutoPipelining).toBeFalsy();
    } finally {
      if (before === undefined) delete process.env.TICKWORK_REDIS_AUTOPIPELINE;
      else process.env.TICKWORK_REDIS_AUTOPIPELINE = before;
      await other?.close();
    }
  });
});
