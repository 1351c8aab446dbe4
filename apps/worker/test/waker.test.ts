/**
 * The waker against a Redis of the test's own at `hz 10` (nothing else talks to it): a PING goes
 * to Redis after each instant a delayed job falls due — never before it (each is stamped as it
 * leaves, and Redis's own command count shows it arrived), and none while the Worker has no free
 * slot or once the waker stopped; and it reports a queue whose earliest delayed job stays overdue
 * while the Worker has a free slot (nothing takes the jobs here), never while no slot is free.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { eventually, startOwnRedis, testPrefix, type OwnRedis } from '@tickwork/testkit';
import { FireQueue } from '@tickwork/queue';
import { startWaker } from '../src/waker.ts';

let server: OwnRedis;
let fireQueue: FireQueue;
let redis: Redis;
let pinger: Redis;
const pings: number[] = [];

async function pingsCounted(): Promise<number> {
  const stats = await redis.info('commandstats');
  return Number(/cmdstat_ping:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

beforeAll(async () => {
  server = await startOwnRedis(['--hz', '10']);
  fireQueue = new FireQueue({ redisUrl: server.url, prefix: testPrefix() });
  redis = new Redis(server.url);
  // The waker's PINGs, stamped as they leave.
  pinger = Object.assign(Object.create(redis) as Redis, {
    ping: () => {
      pings.push(Date.now());
      return redis.ping();
    },
  });
});
afterAll(async () => {
  redis?.disconnect();
  await fireQueue?.close();
  await server?.stop();
});

async function delayed(ms: number): Promise<number> {
  const job = await fireQueue.queue.add('fire', { jobId: 'x', version: 1 }, { delay: ms });
  return job.timestamp + ms;
}

describe('waker', () => {
  it('pings Redis just after each due instant, never before, and stops when told', async () => {
    await fireQueue.queue.waitUntilReady();
    const first = await delayed(300);
    const second = await delayed(700);
    pings.length = 0;
    const counted = await pingsCounted();
    const waker = startWaker({ queue: fireQueue, redis: pinger, hasFreeSlot: () => true });
    try {
      // Nothing takes the jobs here, so the first stays due: one PING for its instant, not one per look.
      await eventually(async () => (pings.length >= 1 ? true : undefined), 5_000, 'a ping');
      expect(pings[0]).toBeGreaterThanOrEqual(first);
      const [earliest] = await fireQueue.queue.getJobs(['delayed'], 0, -1, true);
      await earliest!.remove();
      await eventually(
        async () => (pings.some((at) => at >= second) ? true : undefined),
        5_000,
        'a ping after the second',
      );
      expect(pings.filter((at) => at < second)).toHaveLength(1);
      expect(await pingsCounted()).toBeGreaterThanOrEqual(counted + 2);
      expect(pings.filter((at) => at < first)).toEqual([]);
    } finally {
      waker.stop();
    }
    await fireQueue.queue.obliterate({ force: true });
  });

  it('does not ping while the Worker has no free slot', async () => {
    const due = await delayed(100);
    let free = false;
    pings.length = 0;
    const waker = startWaker({ queue: fireQueue, redis: pinger, hasFreeSlot: () => free });
    try {
      // Past the instant with no slot free: the waker looks, and keeps quiet.
      await eventually(async () => (Date.now() > due + 300 ? true : undefined), 2_000, 'the instant to pass');
      expect(pings).toEqual([]);
      free = true;
      await eventually(async () => (pings.length >= 1 ? true : undefined), 2_000, 'a ping once a slot is free');
    } finally {
      waker.stop();
    }
    const stoppedAt = Date.now();
    const after = await delayed(50);
    await eventually(async () => (Date.now() > after + 300 ? true : undefined), 2_000, 'its instant to pass');
    expect(pings.filter((at) => at > stoppedAt)).toEqual([]);
  });

  it('reports a stuck Worker when the earliest delayed job stays overdue with a free slot, again less often', async () => {
    await fireQueue.queue.obliterate({ force: true });
    let free = false;
    const stuck: { at: number; overdueMs: number }[] = [];
    const due = await delayed(50);
    const waker = startWaker({
      queue: fireQueue,
      redis: pinger,
      hasFreeSlot: () => free,
      nudge: false,
      stuckAfterMs: 300,
      onStuck: (overdueMs) => stuck.push({ at: Date.now(), overdueMs }),
    });
    try {
      // No free slot: the Worker is busy, not stuck, however long the job stays due.
      await eventually(async () => (Date.now() > due + 800 ? true : undefined), 2_000, 'the instant to pass');
      expect(stuck).toEqual([]);
      const freedAt = Date.now();
      free = true;
      await eventually(async () => (stuck.length >= 2 ? true : undefined), 5_000, 'two reports');
      expect(stuck[0]!.at - freedAt).toBeGreaterThanOrEqual(300);
      expect(stuck[0]!.overdueMs).toBeGreaterThanOrEqual(800);
      // The second report waits twice as long as the first.
      expect(stuck[1]!.at - stuck[0]!.at).toBeGreaterThanOrEqual(600);
      // nudge: false sends no PING.
      expect(pings.filter((at) => at >= due)).toEqual([]);
    } finally {
      waker.stop();
    }
    await fireQueue.queue.obliterate({ force: true });
  });
});
