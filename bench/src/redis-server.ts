/**
 * A Redis of the bench's own, on a free port (the test kit's `startOwnRedis`): the shared one
 * serves other engineers' tests, and a private one lets the bench vary `hz` and read
 * `INFO memory` without anyone else's keys in it. Persistence is off: the bench measures the
 * scheduler, not fsync; RESULTS.md says so.
 */
import { Redis } from 'ioredis';
import { startOwnRedis, type OwnRedis } from '@tickwork/testkit';

export async function startRedis(hz: number): Promise<OwnRedis & { hz: number }> {
  return { ...(await startOwnRedis(['--hz', String(hz)])), hz };
}

export async function redisUsedMemory(url: string): Promise<number> {
  const redis = new Redis(url);
  try {
    const info = await redis.info('memory');
    return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
  } finally {
    redis.disconnect();
  }
}

/** The pid of the Redis server behind `url` (`INFO server`'s `process_id`). */
export async function redisPid(url: string): Promise<number> {
  const redis = new Redis(url);
  try {
    return Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1] ?? Number.NaN);
  } finally {
    redis.disconnect();
  }
}
