/**
 * Worker kill: `kill -9` a random worker every few seconds while 50 occurrences fire every second
 * and callbacks take a few hundred ms (so kills land mid-callback). BullMQ's stalled-job recovery
 * hands each interrupted occurrence to another worker, which delivers it under the same run id.
 * Also: a callback slower than the lock duration is never taken for stalled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, type ConnectionOptions } from 'bullmq';
import { redisOptionsFrom, FIRE_QUEUE, schedulerIdOf, schedulerOccurrenceIdOf } from '@tickwork/queue';
import { call, eventually } from '@tickwork/testkit';
import { judge, report, scaled, startScenario, type CreatedJob, type Ledger, type Scenario } from './lib/scenario.ts';

let scenario: Scenario;

beforeAll(async () => {
  scenario = await startScenario({ apis: 1, workers: 3 });
}, 60_000);

afterAll(async () => {
  await scenario?.close();
}, 60_000);

/**
 * BullMQ creates an occurrence's successor when a worker takes it, one interval after it — or,
 * when that is already past, at the next slot after now. So a job's timer skips slots when its
 * occurrence is taken more than one interval late (workers saturated on a loaded box), or when a
 * worker dies between taking it and creating the successor (one Redis round trip). The skipped
 * occurrences were never created; like any missed occurrences they collapse into the one late
 * run. This finds such gaps: every lost instant must follow, contiguously, an occurrence of the
 * same job delivered no earlier than the gap's end; anything else is unexplained, and a failure.
 */
function stallGaps(
  lost: Array<{ jobId: string; at: number }>,
  jobs: CreatedJob[],
  verdict: { maxLatenessMs: number },
  { runs, received }: Ledger,
): { unexplained: Array<{ jobId: string; at: number }>; jobs: number } {
  const unexplained: Array<{ jobId: string; at: number }> = [];
  const stalled = new Set<string>();
  for (const job of jobs) {
    const missing = lost
      .filter((l) => l.jobId === job.id)
      .map((l) => l.at)
      .sort((a, b) => a - b);
    if (missing.length === 0) continue;
    const contiguous = missing.every((at, i) => i === 0 || at - missing[i - 1]! === job.everyMs);
    const before = runs.find((r) => r.jobId === job.id && r.scheduledFor === missing[0]! - job.everyMs);
    const deliveredAt = before
      ? Math.max(0, ...received.filter((c) => c.headers['webhook-id'] === before.id).map((c) => c.at))
      : 0;
    if (
      contiguous &&
      before &&
      deliveredAt >= missing.at(-1)! &&
      deliveredAt - before.scheduledFor <= verdict.maxLatenessMs
    ) {
      stalled.add(job.id);
    } else {
      unexplained.push(...missing.map((at) => ({ jobId: job.id, at })));
    }
  }
  return { unexplained, jobs: stalled.size };
}

/** Lock 30 s renewed every 15 s, stalled check every 15 s: ≤ 45 s, plus the callback itself. */
const RECOVERY_BOUND_MS = 60_000;

describe('chaos: worker kill', () => {
  it(
    'loses no occurrence, keeps one webhook-id per occurrence, and recovers within 60 s',
    async () => {
      const { sink, fleet } = scenario;
      sink.respond = () => ({ status: 200, delayMs: 150 + Math.floor(Math.random() * 350) });
      // 150 jobs every 3 s: 50 occurrences a second, and room for the fire lag of a loaded box
      // (BullMQ creates an occurrence's successor when it starts; see docs/guarantees.md).
      const jobs: CreatedJob[] = await scenario.createEveryJobs(150, 3_000, 'kill');
      const from = Date.now() + 2_000;
      await sink.waitFor(
        (r) => jobs.every((j) => r.some((c) => c.headers['tickwork-job-id'] === j.id && c.at >= from)),
        30_000,
        'every job firing',
      );

      const killUntil = Date.now() + scaled(20_000);
      let kills = 0;
      while (Date.now() < killUntil || kills < 4) {
        await new Promise((r) => setTimeout(r, 3_000 + Math.floor(Math.random() * 2_000)));
        const victim = Math.floor(Math.random() * fleet.workers.length);
        await fleet.restartWorker(victim, 'SIGKILL');
        kills++;
      }
      const until = Date.now();

      // Everything due before the last kill is delivered and succeeded, within the recovery bound —
      // except the occurrences a timer skipped while its in-flight occurrence was stalled (see
      // stallGaps): those collapse into that late occurrence, as missed occurrences do.
      const verdict = await eventually(
        async () => {
          const ledger = await scenario.ledger();
          const v = judge({ jobs, ledger, from, until });
          const { unexplained } = stallGaps(v.lost, jobs, v, ledger);
          return unexplained.length === 0 && v.notSucceeded.length === 0 && v.undelivered.length === 0 ? v : undefined;
        },
        RECOVERY_BOUND_MS + 15_000,
        'every occurrence of the kill window to succeed',
      ).catch(async (error: Error) => {
        const v = judge({ jobs, ledger: await scenario.ledger(), from, until });
        // What BullMQ knows of the first lost occurrences, to tell "never created" from "dropped".
        const queue = new Queue(FIRE_QUEUE, {
          connection: redisOptionsFrom(scenario.env.REDIS_URL, 'worker') as ConnectionOptions,
          prefix: scenario.env.BULLMQ_PREFIX,
        });
        const states = [];
        for (const l of v.lost.slice(0, 5)) {
          const bullJob = await queue.getJob(schedulerOccurrenceIdOf(schedulerIdOf(l.jobId, 1), l.at));
          states.push({
            ...l,
            state: bullJob ? await bullJob.getState() : 'absent',
            failedReason: bullJob?.failedReason,
            returnvalue: bullJob?.returnvalue,
            attemptsMade: bullJob?.attemptsMade,
          });
        }
        await queue.close();
        const summary = { ...v, lost: v.lost.length, states, notSucceeded: v.notSucceeded.slice(0, 10) };
        throw new Error(`${error.message}\n${JSON.stringify(summary, null, 1)}`);
      });
      const gaps = stallGaps(verdict.lost, jobs, verdict, await scenario.ledger());
      report('worker-kill', {
        kills,
        occurrences: verdict.expected,
        deliveries: verdict.deliveries,
        lost: gaps.unexplained.length,
        jobsWithSkippedSlots: gaps.jobs,
        skippedSlots: verdict.lost.length,
        twoIds: verdict.twoIds.length,
        maxLatenessMs: verdict.maxLatenessMs,
      });
      expect(kills).toBeGreaterThanOrEqual(4);
      expect(gaps.unexplained).toEqual([]);
      expect(verdict.twoIds).toEqual([]);
      expect(verdict.unknownIds).toEqual([]);
      expect(verdict.maxLatenessMs).toBeLessThanOrEqual(RECOVERY_BOUND_MS);
    },
    scaled(20_000) + 180_000,
  );

  it('never takes a callback slower than the lock duration for stalled', async () => {
    const { sink, token, api } = scenario;
    // 35 s: longer than the 30 s lock, so only its renewal keeps the occurrence with its worker.
    sink.respond = (r) => ({ status: 200, delayMs: r.path === '/slow' ? 35_000 : 0 });
    const created = await call(api, 'POST', '/v1/jobs', {
      token,
      body: {
        name: 'slow',
        schedule: { at: new Date(Date.now() + 1_000).toISOString() },
        target: { url: `${sink.url}/slow`, timeoutMs: 60_000 },
      },
    });
    expect(created.status).toBe(201);
    const run = await eventually(
      async () => (await scenario.runs()).find((r) => r.jobId === created.body.id && r.status !== 'running'),
      70_000,
      'the slow run to end',
    );
    expect(run).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(sink.received.filter((c) => c.path === '/slow')).toHaveLength(1);
  }, 90_000);
});
