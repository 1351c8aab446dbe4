/**
 * The fire queue's shards on a real Redis Cluster of this file's own: the slot maths agrees with
 * Redis (`CLUSTER KEYSLOT`), 3 shards land on 3 masters, a job's shard is its id's, every BullMQ
 * call Tickwork makes works on a shard over an ioredis Cluster, and jobs spread over the shards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Worker } from 'bullmq';
import { startOwnRedisCluster, type OwnRedisCluster } from '@tickwork/testkit';
import { buildJobSpec, type Job } from '@tickwork/core';
import { schedulerIdOf } from '../src/catalog.ts';
import { closeRedis, openRedis } from '../src/connection.ts';
import { FireQueue } from '../src/fire-queue.ts';
import { schedulerNextsOf } from '../src/layout.ts';
import { fireQueueNamesOf, hashTagOf, keySlotOf, maintenanceQueueNameOf, shardIndexOf } from '../src/shards.ts';

let cluster: OwnRedisCluster;

beforeAll(async () => {
  cluster = await startOwnRedisCluster({ masters: 3, replicas: 1 });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

const uuid = (i: number) => `0190a0b0-0000-7000-8000-${String(i).padStart(12, '0')}`;

function everyJob(id: string): Job {
  const now = Date.now();
  const spec = buildJobSpec(
    { name: 'tick', schedule: { every: '1m' }, target: { url: 'http://127.0.0.1:9/' } },
    { now },
  );
  return { ...spec, id, serviceId: uuid(999_999), state: 'active', version: 1, createdAt: now, updatedAt: now };
}

describe('fire queue names', () => {
  it('keep today’s names with one shard on one Redis or under a tagged prefix', () => {
    expect(fireQueueNamesOf({ prefix: '{tickwork}' })).toEqual(['fire']);
    expect(fireQueueNamesOf({ prefix: 'tickwork' })).toEqual(['fire']);
    expect(fireQueueNamesOf({ prefix: '{tickwork}', cluster: true })).toEqual(['fire']);
    expect(maintenanceQueueNameOf({ prefix: '{tickwork}', cluster: true })).toBe('maintenance');
    expect(maintenanceQueueNameOf({ prefix: 'tickwork', cluster: true })).toBe('{maintenance}');
  });

  it('give each shard a tag of its own, and refuse a count out of range', () => {
    const names = fireQueueNamesOf({ prefix: 'tickwork', shards: 4 });
    expect(new Set(names).size).toBe(4);
    for (const name of names) expect(hashTagOf(name)).toBeDefined();
    expect(fireQueueNamesOf({ prefix: 'tickwork', shards: 1, cluster: true })[0]).toMatch(/^fire-\{.+\}$/);
    expect(() => fireQueueNamesOf({ prefix: 'tickwork', shards: 0 })).toThrow(RangeError);
    expect(() => fireQueueNamesOf({ prefix: 'tickwork', shards: 257 })).toThrow(RangeError);
  });

  it('agree with Redis on every key’s slot', async () => {
    const client = cluster.client();
    try {
      const keys = [
        'tickwork:fire:wait',
        '{tickwork}:fire:wait',
        ...fireQueueNamesOf({ prefix: 'tickwork', shards: 7 }).map((name) => `tickwork:${name}:repeat`),
        'a{}b',
        '{}{x}',
        'é{ü}',
      ];
      for (const key of keys) expect(keySlotOf(key)).toBe(Number(await client.cluster('KEYSLOT', key)));
    } finally {
      client.disconnect();
    }
  });

  it('put 3 shards on the 3 masters of an evenly split cluster, 6 shards two on each', async () => {
    for (const [shards, perMaster] of [
      [3, 1],
      [6, 2],
    ] as const) {
      const names = fireQueueNamesOf({ prefix: 'tickwork', shards, cluster: true });
      const masters = await Promise.all(names.map((name) => cluster.masterOf(`tickwork:${name}:wait`)));
      const counts = new Map<number, number>();
      for (const node of masters) counts.set(node.port, (counts.get(node.port) ?? 0) + 1);
      expect([...counts.values()]).toEqual([perMaster, perMaster, perMaster]);
    }
  });

  it('map a job to one shard by its id, stably, and spread jobs evenly', () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 3_000; i++) {
      const shard = shardIndexOf(uuid(i), 3);
      expect(shardIndexOf(uuid(i), 3)).toBe(shard);
      counts[shard]!++;
    }
    for (const count of counts) expect(count).toBeGreaterThan(800);
    expect(shardIndexOf(uuid(1), 1)).toBe(0);
  });
});

describe('FireQueue on a Redis Cluster', () => {
  it('registers each job on its shard, consumes it there, lists and forgets the queues', async () => {
    const prefix = `twshard${Date.now()}`;
    const target = { url: 'redis://127.0.0.1:1', clusterNodes: cluster.nodesEnv.split(',') };
    const fireQueue = new FireQueue({ redisUrl: target, prefix, shards: 3 });
    const shared = openRedis(target, 'worker', 'shards-test');
    try {
      await fireQueue.ping();
      await fireQueue.announce({ current: true });
      expect(await fireQueue.isCurrentLayout()).toBe(true);
      const jobs = Array.from({ length: 12 }, (_, i) => everyJob(uuid(i)));
      for (const job of jobs) await fireQueue.register(job);
      for (const job of jobs) {
        const shard = fireQueue.shardOf(job.id);
        expect(shard.name).toBe(fireQueue.shards[shardIndexOf(job.id, 3)]!.name);
        const [next] = await schedulerNextsOf(shard, [schedulerIdOf(job.id, 1)]);
        expect(next).toBeGreaterThan(Date.now());
      }
      expect(new Set(jobs.map((job) => fireQueue.shardOf(job.id).name)).size).toBe(3);

      // A run queued now is taken by a Worker of its shard, over the Cluster.
      const job = jobs[0]!;
      const shard = fireQueue.shardOf(job.id);
      let worker: Worker | undefined;
      const taken = new Promise<string | undefined>((resolve) => {
        worker = new Worker(shard.name, async (bullJob) => resolve(bullJob.id), { connection: shared, prefix });
        worker.on('error', () => {});
      });
      await fireQueue.enqueueRun({ jobId: job.id, version: 1, runId: uuid(500) }, `manual:${job.id}:${uuid(500)}`);
      expect(await taken).toBe(`manual:${job.id}:${uuid(500)}`);
      await worker?.close();

      for (const each of jobs) await fireQueue.unregister(each.id, 1);
      for (const each of fireQueue.shards) expect(await each.queue.getJobSchedulersCount()).toBe(0);

      // Another shard count lists its queues beside these; the first handle sees them as others.
      const two = new FireQueue({ redisUrl: target, prefix, shards: 2 });
      try {
        await two.ping();
        await two.announce({ current: true });
        expect(await fireQueue.isCurrentLayout()).toBe(false);
        const others = await two.otherShards();
        expect(others.map((s) => s.name).sort()).toEqual(fireQueue.shards.map((s) => s.name).sort());
        for (const other of others) await two.retire(other.name);
        expect((await shared.smembers(`${prefix}:tickwork:fire-queues`)).sort()).toEqual(
          two.shards.map((s) => s.name).sort(),
        );
      } finally {
        await two.close();
      }
    } finally {
      await fireQueue.close();
      await closeRedis(shared);
    }
  }, 30_000);
});
