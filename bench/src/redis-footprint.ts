/**
 * What one schedule costs Redis, key by key: registers N interval jobs the way the api does
 * (`applyRegistration`, 50 at a time) on a redis-server of its own, then prints `used_memory`
 * after − before, / N, and `MEMORY USAGE` with the encoding of one scheduler hash, one pending
 * occurrence hash and the queue's shared keys. No worker runs, so nothing completes: the figure
 * is the schedules' own, without the retained finished jobs the fire bench includes.
 *
 *   node bench/src/redis-footprint.ts [--schedules 100000] [--redis-arg="--hash-max-listpack-value 512"]
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Job } from '@tickwork/core';
import { applyRegistration, FIRE_QUEUE, cronRepeatStrategy, schedulerIdOf, type Registration } from '@tickwork/queue';
import { startOwnRedis } from '@tickwork/testkit';

const { values } = parseArgs({
  options: {
    schedules: { type: 'string', default: '100000' },
    'redis-arg': { type: 'string', multiple: true },
  },
});
const n = Number(values.schedules);
const redisArgs = (values['redis-arg'] ?? []).flatMap((a) => a.split(' '));
const server = await startOwnRedis(redisArgs);
const redis = new Redis(server.url);
const prefix = '{tickwork}';
const queue = new Queue(FIRE_QUEUE, {
  connection: { host: '127.0.0.1', port: server.port },
  prefix,
  settings: { repeatStrategy: cronRepeatStrategy },
});
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
const usage = async (key: string) =>
  `${await redis.object('ENCODING', key)} ${await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')} B`;

try {
  const now = Date.now();
  const register = (i: number) => {
    const id = randomUUID();
    const job = { id, version: 1 } as Job;
    const registration: Registration = {
      kind: 'scheduler',
      schedulerId: schedulerIdOf(id, 1),
      repeat: { every: 60_000, startDate: now + 30_000 + i },
    };
    return applyRegistration(queue, job, registration, now).then(() => id);
  };
  // The queue's own keys (meta, events, id) exist before the measurement starts.
  await register(-1);
  const before = await usedMemory();
  let first = '';
  for (let i = 0; i < n; i += 50) {
    const ids = await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => register(i + k)));
    first ||= ids[0]!;
  }
  const after = await usedMemory();
  const scheduler = `${prefix}:${FIRE_QUEUE}:repeat:${schedulerIdOf(first, 1)}`;
  const [occurrence] = await redis.keys(`${scheduler}:*`);
  console.log(
    `redis ${redisArgs.join(' ') || '(stock settings)'}: ${n} schedules, ${Math.round((after - before) / n)} B per schedule (used_memory after − before, / N)`,
  );
  console.log(
    `  scheduler hash ${await usage(scheduler)}; pending occurrence hash ${await usage(occurrence!)} (its opts: ${(await redis.hget(occurrence!, 'opts'))!.length} B)`,
  );
  for (const key of ['delayed', 'repeat', 'events'])
    console.log(`  ${key}: ${await usage(`${prefix}:${FIRE_QUEUE}:${key}`)}`);
} finally {
  await queue.close();
  redis.disconnect();
  await server.stop();
}
