/**
 * The fire bench on a Redis Cluster of the bench's own (N masters, N replicas, the test kit's
 * `startOwnRedisCluster`) with the fire queue in N shards under an untagged prefix, beside the
 * single node of the same run: the at-rate figures on the cluster, and a Tickwork drain on each,
 * alternating rounds. On a box with fewer cores than masters expect no gain: every node, the api
 * and the worker share the same cores; what it shows is that it works and what it costs.
 */
import { Redis } from 'ioredis';
import { startOwnRedisCluster, type OwnRedisCluster, type Sink } from '@tickwork/testkit';
import { fireAtRate, tickworkDrain, type AtRateFigures } from './fire-bench.ts';
import { median, round } from './stats.ts';
import { deploy } from './tickwork.ts';

export interface ClusterFigures {
  masters: number;
  shards: number;
  atRate: AtRateFigures | undefined;
  drain: {
    count: number;
    rounds: number;
    singlePerSec: number;
    clusterPerSec: number;
    clusterOverSingle: number;
    singleShots: number[];
    clusterShots: number[];
  };
}

async function clusterUsedMemory(cluster: OwnRedisCluster): Promise<number> {
  let total = 0;
  for (const { node } of await cluster.masters()) {
    const redis = new Redis({ host: '127.0.0.1', port: node.port });
    try {
      total += Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? Number.NaN);
    } finally {
      redis.disconnect();
    }
  }
  return total;
}

export async function clusterBench(options: {
  masters: number;
  single: { url: string; hz: number };
  sink: Sink;
  schedules: number;
  rate: number;
  measureS: number;
  drainCount: number;
  rounds: number;
  quick: boolean;
  nodeOptions: string | undefined;
}): Promise<ClusterFigures> {
  const { masters, sink } = options;
  const cluster = await startOwnRedisCluster({ masters, replicas: 1 });
  const clusterEnv = (label: string) => ({
    REDIS_CLUSTER_NODES: cluster.nodesEnv,
    FIRE_QUEUE_SHARDS: String(masters),
    BULLMQ_PREFIX: `twbench-${label}-${Date.now().toString(36)}`,
  });
  const seedUrl = `redis://${cluster.nodes[0]!.address}`;
  try {
    let atRate: AtRateFigures | undefined;
    if (options.schedules > 0) {
      console.log(
        `fire at rate on a Redis Cluster (${masters} masters + ${masters} replicas, ${masters} fire shards): ` +
          `${options.schedules} schedules, ${options.rate} due/s, 1 worker at concurrency 10`,
      );
      atRate = await fireAtRate({
        redisUrl: seedUrl,
        redisHz: 10,
        schedules: options.schedules,
        rate: options.rate,
        measureS: options.measureS,
        workers: 1,
        sink,
        nodeOptions: options.nodeOptions,
        lateWaitMs: options.quick ? 10_000 : 60_000,
        env: clusterEnv('rate'),
        usedMemory: () => clusterUsedMemory(cluster),
      });
      console.log(
        `  cluster: ${atRate.deliveriesPerSec} deliveries/s, ` +
          `lag p50/p95/p99 ${atRate.lagP50Ms}/${atRate.lagP95Ms}/${atRate.lagP99Ms} ms (max ${atRate.lagMaxMs}), ` +
          `lost ${atRate.lost}, duplicates ${atRate.duplicates}, runs ${atRate.runsRecorded}/${atRate.expected}, ` +
          `Redis ${atRate.redisBytesPerSchedule} B/schedule (masters summed)`,
      );
    }

    console.log(
      `drain: ${options.drainCount} occurrences due at one instant, single node (hz ${options.single.hz}) ` +
        `vs the cluster, ${options.rounds} round(s) each, alternating`,
    );
    const single = await deploy({ redisUrl: options.single.url, workers: 1, label: 'tw_bench_single' });
    const onCluster = await deploy({
      redisUrl: seedUrl,
      workers: 1,
      label: 'tw_bench_cluster',
      env: clusterEnv('drain'),
    });
    const singleShots: number[] = [];
    const clusterShots: number[] = [];
    try {
      const [singleService, clusterService] = await Promise.all([
        single.service('bench-single', 10_000_000),
        onCluster.service('bench-cluster', 10_000_000),
      ]);
      const createPerSec = { value: 150 };
      for (let round = 0; round < options.rounds; round++) {
        const order = round % 2 === 0 ? (['single', 'cluster'] as const) : (['cluster', 'single'] as const);
        for (const which of order) {
          const tw = which === 'single' ? single : onCluster;
          const token = which === 'single' ? singleService.token : clusterService.token;
          const shot = await tickworkDrain(tw, token, sink, options.drainCount, `${which}${round}`, createPerSec);
          (which === 'single' ? singleShots : clusterShots).push(shot.perSec);
        }
      }
    } finally {
      await Promise.allSettled([single.close(), onCluster.close()]);
    }
    const singlePerSec = median(singleShots);
    const clusterPerSec = median(clusterShots);
    const drain = {
      count: options.drainCount,
      rounds: options.rounds,
      singlePerSec,
      clusterPerSec,
      clusterOverSingle: round(clusterPerSec / singlePerSec, 2),
      singleShots,
      clusterShots,
    };
    console.log(
      `  single ${singlePerSec}/s (rounds ${singleShots.join(', ')}), ` +
        `cluster ${clusterPerSec}/s (rounds ${clusterShots.join(', ')}), cluster/single ${drain.clusterOverSingle}×`,
    );
    return { masters, shards: masters, atRate, drain };
  } finally {
    await cluster.stop();
  }
}
