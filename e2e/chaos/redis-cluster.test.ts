/**
 * Tickwork on a Redis Cluster of this file's own (3 masters, 3 replicas, cluster-node-timeout
 * 2000), with the fire queue in 3 shards under an untagged prefix: the shards live on the three
 * masters; kill -9 of a master while jobs fire every second → its replica takes over and within
 * 60 s every job fires again, no occurrence under two webhook-ids, one ledger row per occurrence;
 * then FIRE_QUEUE_SHARDS changes from 3 to 2 on the running fleet (a rolling restart) → every job
 * moves to its new shard, no occurrence lost or doubled, and the old queues are forgotten.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { fireQueueNamesOf, schedulerIdOf, shardIndexOf } from '@tickwork/queue';
import { eventually, startOwnRedisCluster, type OwnRedisCluster } from '@tickwork/testkit';
import { judge, report, startScenario, type CreatedJob, type LedgerRun, type Scenario } from './lib/scenario.ts';

const RECONCILE_INTERVAL_MS = 3_000;
const SHARDS = 3;

let cluster: OwnRedisCluster;
let scenario: Scenario;
let prefix: string;
let jobs: CreatedJob[];

beforeAll(async () => {
  cluster = await startOwnRedisCluster({ masters: 3, replicas: 1 });
  // Untagged, so each fire queue's own tag decides its slot.
  prefix = `twchaos-${randomBytes(4).toString('hex')}`;
  scenario = await startScenario({
    apis: 1,
    workers: 2,
    redisUrl: `redis://${cluster.nodes[0]!.address}`,
    cleanRedis: false,
    env: {
      REDIS_CLUSTER_NODES: cluster.nodesEnv,
      FIRE_QUEUE_SHARDS: String(SHARDS),
      BULLMQ_PREFIX: prefix,
      RECONCILE_INTERVAL_MS: String(RECONCILE_INTERVAL_MS),
    },
  });
  jobs = await scenario.createEveryJobs(9, 1_000, 'cluster');
}, 90_000);

afterAll(async () => {
  await scenario?.close();
  await cluster?.stop();
}, 60_000);

/** Scheduler ids per fire queue of a shard count, read from the cluster. */
async function schedulersByQueue(shards: number): Promise<Map<string, string[]>> {
  const client = cluster.client();
  try {
    const names = fireQueueNamesOf({ prefix, shards, cluster: true });
    const found = new Map<string, string[]>();
    for (const name of names) found.set(name, await client.zrange(`${prefix}:${name}:repeat`, 0, '-1'));
    return found;
  } finally {
    client.disconnect();
  }
}

/** What the cluster and the processes say, printed when a case fails. */
async function diagnose(label: string): Promise<void> {
  const client = cluster.client();
  try {
    const lines: string[] = [`[chaos] diagnose ${label}`];
    lines.push(`  fire-queues ${(await client.smembers(`${prefix}:tickwork:fire-queues`)).join(' ')}`);
    lines.push(`  fire-layout ${await client.get(`${prefix}:tickwork:fire-layout`)}`);
    for (const shards of [SHARDS, 2]) {
      for (const name of fireQueueNamesOf({ prefix, shards, cluster: true })) {
        const queue = new Queue(name, { connection: client, prefix });
        const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'failed', 'completed');
        lines.push(`  ${name}: schedulers ${await queue.getJobSchedulersCount()} ${JSON.stringify(counts)}`);
        await queue.close();
      }
    }
    const maintenance = new Queue('{maintenance}', { connection: client, prefix });
    lines.push(`  maintenance schedulers ${JSON.stringify(await maintenance.getJobSchedulers())}`);
    lines.push(`  maintenance counts ${JSON.stringify(await maintenance.getJobCounts())}`);
    for (const job of await maintenance.getJobs(['completed', 'failed'], 0, 8)) {
      lines.push(`  ${job.name} ${job.finishedOn} ${job.failedReason ?? JSON.stringify(job.returnvalue)}`);
    }
    await maintenance.close();
    for (const [i, proc] of [...scenario.fleet.workers, ...scenario.fleet.apis].entries()) {
      lines.push(`  process ${i} output:\n${proc.output.join('').slice(-3_000)}`);
    }
    console.log(lines.join('\n'));
  } catch (error) {
    console.log(`[chaos] diagnose ${label} failed: ${String(error)}`);
  } finally {
    client.disconnect();
  }
}

/** Rows per occurrence: (job, instant, trigger) that the ledger holds more than once. */
function doubledRows(runs: LedgerRun[]): string[] {
  const seen = new Map<string, number>();
  for (const run of runs) {
    const key = `${run.jobId}@${run.scheduledFor}@${run.trigger}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return [...seen].filter(([, n]) => n > 1).map(([key]) => key);
}

/**
 * Three more occurrences of every job once a disturbance is over, then the ledger and the sink
 * from `from` to 2 s ago judged together.
 */
async function settledVerdict(from: number): Promise<{ runs: LedgerRun[]; verdict: ReturnType<typeof judge> }> {
  const settled = Date.now();
  await scenario.sink.waitFor(
    (r) => jobs.every((j) => r.filter((c) => c.headers['tickwork-job-id'] === j.id && c.at > settled).length >= 3),
    20_000,
    'three more occurrences of every job',
  );
  const until = Date.now() - 2_000;
  const ledger = await scenario.ledger();
  return { runs: ledger.runs, verdict: judge({ jobs, ledger, from, until }) };
}

describe('Redis Cluster, fire queue in shards', () => {
  it('keeps the three shards on the three masters, each job on the shard its id names', async () => {
    const names = fireQueueNamesOf({ prefix, shards: SHARDS, cluster: true });
    const masters = await Promise.all(names.map((name) => cluster.masterOf(`${prefix}:${name}:repeat`)));
    expect(new Set(masters.map((node) => node.port)).size).toBe(SHARDS);
    const byQueue = await eventually(
      async () => {
        const found = await schedulersByQueue(SHARDS);
        return [...found.values()].flat().length === jobs.length ? found : undefined;
      },
      10_000,
      'every scheduler registered',
    );
    for (const job of jobs) {
      const name = names[shardIndexOf(job.id, SHARDS)]!;
      expect(byQueue.get(name)).toContain(schedulerIdOf(job.id, job.version));
    }
    await scenario.sink.waitFor(
      (received) => jobs.every((job) => received.some((c) => c.headers['tickwork-job-id'] === job.id)),
      20_000,
      'every job firing on the cluster',
    );
  });

  // The victim's replica must hold its data when the master dies: to a replica whose first sync
  // has not finished, its data is infinitely old, so it never takes over ("Disconnected from master
  // for longer than allowed", `cluster-replica-validity-factor`) and the slots stay uncovered. The
  // kit hands out a cluster whose replicas are in sync, and the case checks it again before the kill.
  // A Worker whose blocking connection was in flight to the dead master can stop fetching for good
  // (by our reading of BullMQ 6.7 and ioredis 6.0: BullMQ resets that connection with an ioredis
  // Cluster connect() that never settles when its ready check meets cluster_state:fail): the
  // shard's due occurrences then stay `delayed`. The worker replaces such a Worker (waker.ts);
  // `replacedWorkers` says how often it did in this run.
  it('kill -9 of a master: its replica takes over, every job fires again in 60 s, no occurrence twice', async () => {
    const { sink } = scenario;
    const from = Date.now();
    await sink.waitFor(
      (r) => jobs.every((j) => r.some((c) => c.headers['tickwork-job-id'] === j.id && c.at >= from)),
      15_000,
      'every job firing',
    );
    const names = fireQueueNamesOf({ prefix, shards: SHARDS, cluster: true });
    const victim = await cluster.masterOf(`${prefix}:${names[0]}:repeat`);
    await cluster.waitInSync(10_000);
    const before = await cluster.describe(0);
    const killedAt = Date.now();
    cluster.kill(victim);
    await cluster.waitHealthy(30_000).catch((error: unknown) => {
      console.log(`[chaos] victim ${victim.port}; the cluster just before the kill:\n${before}`);
      throw error;
    });
    const failedOverMs = Date.now() - killedAt;
    expect((await cluster.masterOf(`${prefix}:${names[0]}:repeat`)).port).not.toBe(victim.port);

    const firstAfter = new Map<string, number>();
    const notAgain = () =>
      jobs.filter((j) => !firstAfter.has(j.id)).map((j) => `${j.id} shard ${shardIndexOf(j.id, SHARDS)}`);
    await sink
      .waitFor(
        (received) => {
          for (const c of received) {
            const id = String(c.headers['tickwork-job-id']);
            const scheduledFor = Date.parse(String(c.headers['tickwork-scheduled-for']));
            if (!firstAfter.has(id) && c.at > killedAt && scheduledFor > killedAt) firstAfter.set(id, c.at);
          }
          return jobs.every((j) => firstAfter.has(j.id));
        },
        60_000,
        'every job to fire again after the failover',
      )
      .catch(async (error: unknown) => {
        console.log(`[chaos] victim ${victim.port}; jobs not fired again: ${notAgain().join(', ')}`);
        // What the ledger says of them since the kill, and where their occurrences wait.
        const runs = await scenario.runs().catch(() => []);
        const rel = (t: number) => ((t - killedAt) / 1000).toFixed(1);
        for (const job of jobs.filter((j) => !firstAfter.has(j.id)).slice(0, 2)) {
          const rows = runs
            .filter((r) => r.jobId === job.id && r.scheduledFor > killedAt - 3_000)
            .sort((a, b) => a.scheduledFor - b.scheduledFor)
            .map((r) => `${rel(r.scheduledFor)}:${r.trigger[0]}:${r.status}${r.skipReason ? `/${r.skipReason}` : ''}`);
          console.log(`[chaos] ${job.id} runs since the kill (s:trigger:status): ${rows.join(' ')}`);
        }
        const client = cluster.client();
        try {
          const queue = new Queue(names[0]!, { connection: client, prefix });
          const delayed = await queue.getJobs(['delayed', 'wait', 'active'], 0, 10);
          console.log(
            `[chaos] ${names[0]} now ${rel(Date.now())}: ${delayed.map((j) => `${j.id}@${rel(j.timestamp + (j.opts.delay ?? 0))}`).join(' ')}`,
          );
          await queue.close();
        } finally {
          client.disconnect();
        }
        console.log(`[chaos] the cluster now:\n${await cluster.describe(15)}`);
        await diagnose('after the master kill');
        throw error;
      });
    const worstMs = Math.max(...jobs.map((j) => firstAfter.get(j.id)! - killedAt));
    // A few regular occurrences after the recovery, then the whole span is judged.
    const { runs, verdict } = await settledVerdict(from - 5_000);
    report('redis-cluster master kill', {
      failoverMs: failedOverMs,
      worstRecoveryMs: worstMs,
      expected: verdict.expected,
      lost: verdict.lost.length,
      missed: verdict.missed.length,
      twoIds: verdict.twoIds.length,
      // Workers replaced because their shard's due occurrences stayed untaken (see waker.ts).
      replacedWorkers: scenario.fleet.workers
        .map((proc) => proc.output.join('').split('starting a new Worker').length - 1)
        .reduce((a, b) => a + b, 0),
    });
    for (const proc of scenario.fleet.workers) {
      for (const line of proc.output.join('').split('\n')) {
        if (line.includes('starting a new Worker')) console.log(`[chaos] ${line.slice(0, 400)}`);
      }
    }
    expect(worstMs).toBeLessThan(60_000);
    expect(verdict.twoIds).toEqual([]);
    expect(verdict.unknownIds).toEqual([]);
    expect(doubledRows(runs)).toEqual([]);
  });

  it('FIRE_QUEUE_SHARDS 3 → 2 on the running fleet: every job moves, no occurrence lost or doubled', async () => {
    const { sink, fleet } = scenario;
    const from = Date.now();
    await sink.waitFor(
      (r) => jobs.every((j) => r.some((c) => c.headers['tickwork-job-id'] === j.id && c.at >= from)),
      20_000,
      'every job firing',
    );
    // A rolling restart with the new count: one worker, then the api, then the other worker.
    fleet.env.FIRE_QUEUE_SHARDS = '2';
    const changedAt = Date.now();
    const timeline: string[] = [];
    const mark = (what: string) => timeline.push(`${what}@${((Date.now() - changedAt) / 1000).toFixed(1)}s`);
    await fleet.restartWorker(0, 'SIGTERM');
    mark('worker-1');
    await fleet.restartApi(0);
    mark('api');
    await fleet.restartWorker(1, 'SIGTERM');
    mark('worker-2');

    const names = fireQueueNamesOf({ prefix, shards: 2, cluster: true });
    const moved = await eventually(
      async () => {
        const [before, after] = await Promise.all([schedulersByQueue(SHARDS), schedulersByQueue(2)]);
        const left = [...before.values()].flat().length;
        const now = [...after.values()].flat();
        if (left === 0 && now.length === jobs.length) {
          mark('moved');
          return after;
        }
        return undefined;
      },
      // A sweep per pass while the old queues exist; under a full suite on 2 cores the restarted
      // workers' first passes come late, so the bound is the issue's own minute, not 32 s.
      60_000,
      'every scheduler on its new shard',
    ).catch(async (error: unknown) => {
      await diagnose('resharding');
      throw error;
    });
    for (const job of jobs) {
      expect(moved.get(names[shardIndexOf(job.id, 2)]!)).toEqual(
        expect.arrayContaining([schedulerIdOf(job.id, job.version)]),
      );
    }
    // The old queues, empty, are forgotten.
    const client = cluster.client();
    try {
      await eventually(
        async () => {
          const listed = await client.smembers(`${prefix}:tickwork:fire-queues`);
          return listed.sort().join(',') === [...names].sort().join(',') ? listed : undefined;
        },
        // Forgotten once empty for ten passes.
        14 * RECONCILE_INTERVAL_MS + 10_000,
        'only the new queues listed',
      );
    } finally {
      client.disconnect();
    }
    const { runs, verdict } = await settledVerdict(changedAt - 3_000);
    const missedAt = verdict.missed.map(
      (run) => `${jobs.findIndex((job) => job.id === run.jobId)}@${Math.round((run.scheduledFor - changedAt) / 1000)}`,
    );
    console.log(`[chaos] reshard missed slots (job@s after the change): ${missedAt.sort().join(' ')}`);
    console.log(`[chaos] reshard timeline: ${timeline.join(' ')}`);
    if (process.env.TICKWORK_CHAOS_DEBUG) {
      const job0 = jobs[0]!;
      const rel = (t: number) => ((t - changedAt) / 1000).toFixed(1);
      const rows = runs
        .filter((r) => r.jobId === job0.id && r.scheduledFor > changedAt - 3_000)
        .sort((a, b) => a.scheduledFor - b.scheduledFor)
        .map((r) => `${rel(r.scheduledFor)}:${r.trigger[0]}:${r.status}${r.skipReason ? `/${r.skipReason}` : ''}`);
      console.log(`[chaos] job 0 runs: ${rows.join(' ')}`);
      const got = sink.received
        .filter((c) => c.headers['tickwork-job-id'] === job0.id && c.at > changedAt - 3_000)
        .map((c) => `${rel(Date.parse(String(c.headers['tickwork-scheduled-for'])))}@${rel(c.at)}`);
      console.log(`[chaos] job 0 callbacks (scheduled@received): ${got.join(' ')}`);
      for (const [i, proc] of fleet.workers.entries()) {
        const lines = proc.output
          .join('')
          .split('\n')
          .filter((line) => /reconcile|maintenance/.test(line));
        console.log(`[chaos] worker ${i} reconcile lines:\n${lines.join('\n').slice(-6_000)}`);
      }
    }
    report('redis-cluster reshard 3→2', {
      expected: verdict.expected,
      lost: verdict.lost.length,
      missed: verdict.missed.length,
      twoIds: verdict.twoIds.length,
      maxLatenessMs: verdict.maxLatenessMs,
    });
    expect(verdict.lost).toEqual([]);
    expect(verdict.twoIds).toEqual([]);
    expect(verdict.unknownIds).toEqual([]);
    expect(doubledRows(runs)).toEqual([]);
  }, 180_000);
});
