/**
 * The waker against a Redis of the test's own at `hz 10` (nothing else talks to it): a PING goes
 * to Redis after each instant a delayed job falls due — never before it (each is stamped as it
 * leaves, and Redis's own command count shows it arrived), and none while the Worker has no free
 * slot, none while it is taking or finishing a job, none once the waker stopped; it reads the
 * instants ahead at once rather than one read per instant; and it reports a queue whose earliest delayed job stays overdue
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

async function commandCalls(command: string): Promise<number> {
  const stats = await redis.info('commandstats');
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
}
const pingsCounted = () => commandCalls('ping');

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

  it('reads the due instants ahead at once: a PING after each instant, far fewer reads than instants', async () => {
    await fireQueue.queue.obliterate({ force: true });
    // Twenty instants 10 ms apart, from 300 ms on; nothing takes the jobs here.
    const instants: number[] = [];
    for (let i = 0; i < 20; i++) instants.push(await delayed(300 + 10 * i));
    instants.sort((x, y) => x - y);
    pings.length = 0;
    const reads = async () => (await commandCalls('zrange')) + (await commandCalls('zrangebyscore'));
    const readsBefore = await reads();
    const waker = startWaker({ queue: fireQueue, redis: pinger, hasFreeSlot: () => true });
    try {
      const last = instants[instants.length - 1]!;
      await eventually(async () => (pings.some((at) => at >= last) ? true : undefined), 5_000, 'a ping after the last');
      // Each instant has its PING at or after it and before the next one's (or the last's).
      for (const [i, at] of instants.entries()) {
        const next = instants[i + 1] ?? Number.POSITIVE_INFINITY;
        if (next === at) continue;
        expect(pings.some((p) => p >= at && p < next + 5)).toBe(true);
      }
      expect(pings.filter((at) => at < instants[0]!)).toEqual([]);
      // One read per 100 ms look-ahead over ~0.5 s, not one per instant (the reads minus the test's own).
      expect((await reads()) - readsBefore).toBeLessThanOrEqual(10);
    } finally {
      waker.stop();
    }
    await fireQueue.queue.obliterate({ force: true });
  });

  it('does not ping while the Worker is taking or finishing a job, and does once it waits', async () => {
    const due = await delayed(100);
    let waiting = false;
    pings.length = 0;
    const waker = startWaker({ queue: fireQueue, redis: pinger, hasFreeSlot: () => true, isWaiting: () => waiting });
    try {
      await eventually(async () => (Date.now() > due + 300 ? true : undefined), 2_000, 'the instant to pass');
      expect(pings).toEqual([]);
      waiting = true;
      await eventually(async () => (pings.length >= 1 ? true : undefined), 2_000, 'a ping once the Worker waits');
      expect(pings).toHaveLength(1);
    } finally {
      waker.stop();
    }
    await fireQueue.queue.obliterate({ force: true });
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
