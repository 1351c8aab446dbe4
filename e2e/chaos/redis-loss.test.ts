/**
 * Redis loses everything — FLUSHALL, or a restart of a Redis without persistence — on a Redis of
 * this file's own. The reconciler (every 3 s here) rebuilds every scheduler from Postgres: each
 * active job fires again within one interval plus 5 s, catches up at most once, no scheduler is
 * left that Postgres does not account for, and outside the gap no occurrence is lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, type ConnectionOptions } from 'bullmq';
import { jobStatesOf } from '@tickwork/db';
import { redisOptionsFrom, MAINTENANCE_QUEUE, FIRE_QUEUE, schedulerIdOf } from '@tickwork/queue';
import { eventually, startOwnRedis, type OwnRedis } from '@tickwork/testkit';
import { judge, report, startScenario, type CreatedJob, type Scenario } from './lib/scenario.ts';

const RECONCILE_INTERVAL_MS = 3_000;

let redis: OwnRedis;
let scenario: Scenario;

beforeAll(async () => {
  redis = await startOwnRedis(['--hz', '100']);
  scenario = await startScenario({
    apis: 1,
    workers: 2,
    redisUrl: redis.url,
    env: { RECONCILE_INTERVAL_MS: String(RECONCILE_INTERVAL_MS) },
  });
}, 60_000);

afterAll(async () => {
  await scenario?.close();
  await redis?.close();
}, 60_000);

function queues() {
  const connection = redisOptionsFrom(redis.url, 'worker') as ConnectionOptions;
  const prefix = scenario.env.BULLMQ_PREFIX;
  const fire = new Queue(FIRE_QUEUE, { connection, prefix });
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection, prefix });
  // While the test's own Redis restarts, these reconnect quietly.
  for (const queue of [fire, maintenance]) queue.on('error', () => {});
  return { fire, maintenance };
}

/** The `now` of the first reconcile pass after `since` that repaired something. */
async function firstRepairAfter(maintenance: Queue, since: number): Promise<number | undefined> {
  const done = await maintenance.getJobs(['completed'], 0, 200);
  const repairs = done
    .map((job) => job.returnvalue as { now?: number; repairs?: Record<string, number> } | undefined)
    .filter((r): r is { now: number; repairs: Record<string, number> } => !!r?.now && !!r.repairs && r.now >= since)
    .filter((r) => Object.values(r.repairs).some((n) => n > 0))
    .map((r) => r.now);
  return repairs.length ? Math.min(...repairs) : undefined;
}

async function lose(jobs: CreatedJob[], how: () => Promise<void>, name: string) {
  const { sink } = scenario;
  const { fire, maintenance } = queues();
  try {
    const before = Date.now();
    await sink.waitFor(
      (r) => jobs.every((j) => r.some((c) => c.headers['tickwork-job-id'] === j.id && c.at >= before)),
      15_000,
      'every job firing',
    );
    const lostAt = Date.now();
    await how();

    // Every job fires again, soon: within one reconcile interval plus 5 s of the loss.
    const firstAfter = new Map<string, number>();
    await sink.waitFor(
      (received) => {
        for (const c of received) {
          const id = String(c.headers['tickwork-job-id']);
          if (
            !firstAfter.has(id) &&
            c.at > lostAt + 100 &&
            Date.parse(String(c.headers['tickwork-scheduled-for'])) > lostAt
          ) {
            firstAfter.set(id, c.at);
          }
        }
        return jobs.every((j) => firstAfter.has(j.id));
      },
      RECONCILE_INTERVAL_MS + 30_000,
      'every job to fire again',
    );
    const worstMs = Math.max(...jobs.map((j) => firstAfter.get(j.id)! - lostAt));

    const repairedAt = await eventually(() => firstRepairAfter(maintenance, lostAt), 10_000, 'the repairing pass');
    // Let a few regular occurrences pass after the repair, then judge.
    await new Promise<void>((resolve) => setTimeout(resolve, 4_000));
    const until = Date.now() - 2_000;
    const ledger = await scenario.ledger();
    const { runs } = ledger;
    const catchUps = jobs.map(
      (j) => runs.filter((r) => r.jobId === j.id && r.scheduledFor > lostAt && r.scheduledFor <= repairedAt).length,
    );
    const beforeLoss = judge({ jobs, ledger, from: before - 5_000, until: lostAt - 1_500 });
    const afterRepair = judge({ jobs, ledger, from: repairedAt + 1_500, until });

    // Redis holds exactly the schedulers Postgres accounts for.
    const schedulers = (await fire.getJobSchedulers(0, -1)).map((s) => s.key).sort();
    const states = await jobStatesOf(
      scenario.db.db,
      jobs.map((j) => j.id),
    );
    const expected = [...states.entries()]
      .filter(([, s]) => s.state === 'active')
      .map(([id, s]) => schedulerIdOf(id, s.version))
      .sort();

    report(name, {
      jobs: jobs.length,
      firesAgainWithinMs: worstMs,
      repairAfterMs: repairedAt - lostAt,
      maxCatchUpsPerJob: Math.max(...catchUps),
      lostOutsideGap: beforeLoss.lost.length + afterRepair.lost.length,
      orphans: schedulers.filter((s) => !expected.includes(s)).length,
    });
    expect(worstMs).toBeLessThanOrEqual(RECONCILE_INTERVAL_MS + 5_000);
    expect(Math.max(...catchUps)).toBeLessThanOrEqual(1);
    expect(schedulers).toEqual(expected);
    for (const verdict of [beforeLoss, afterRepair]) {
      expect(verdict.lost).toEqual([]);
      expect(verdict.twoIds).toEqual([]);
      expect(verdict.unknownIds).toEqual([]);
    }
  } finally {
    await fire.close();
    await maintenance.close();
  }
}

describe('chaos: Redis loses its data', () => {
  let jobs: CreatedJob[];

  it('heals a FLUSHALL: all fire again in a reconcile interval + 5 s, one catch-up at most, no orphan', async () => {
    jobs = [
      ...(await scenario.createEveryJobs(20, 2_000, 'flush')),
      ...(await scenario.createEveryJobs(5, 3_000, 'flush3')),
    ];
    await lose(jobs, () => redis.flushAll(), 'redis-flush');
  }, 90_000);

  it('heals a restart of a Redis without persistence the same way', async () => {
    await lose(
      jobs,
      async () => {
        await redis.stop();
        await new Promise<void>((resolve) => setTimeout(resolve, 2_000));
        await redis.start();
      },
      'redis-restart',
    );
  }, 90_000);
});
