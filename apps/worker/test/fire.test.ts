/**
 * Edges of one occurrence that the end-to-end suites cannot pin down deterministically: a run
 * the api recorded for a service disabled since, and an occurrence that arrives before the
 * create that registered it has committed. Real Postgres and BullMQ jobs; no Worker runs, the
 * test hands the BullMQ job to fireOccurrence itself.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { buildJobSpec, encryptSecret, generateSigningSecret, uuidv7 } from '@tickwork/core';
import {
  catchUpJobIdOf,
  manualJobIdOf,
  schedulerIdOf,
  schedulerOccurrenceIdOf,
  type FireJobData,
} from '@tickwork/queue';
import {
  findRunById,
  insertCalendar,
  insertJob,
  insertRequestedRun,
  insertService,
  recordOccurrence,
} from '@tickwork/db';
import { createTestDatabase, testBaseUrls, testPrefix, type TestDatabase } from '@tickwork/testkit';
import { createDispatchers } from '../src/deliver.ts';
import { RetryLaterError, fireOccurrence, type FireContext } from '../src/fire/index.ts';

let db: TestDatabase;
let queue: Queue<FireJobData>;
let ctx: FireContext;
const prefix = testPrefix();

beforeAll(async () => {
  db = await createTestDatabase('tw_fire');
  queue = new Queue<FireJobData>('fire', {
    connection: new Redis(testBaseUrls().redisUrl, { maxRetriesPerRequest: null }),
    prefix,
  });
  const policy = { allowPrivate: true, allowedHosts: [] };
  ctx = {
    db: db.db,
    logger: pino({ level: 'silent' }),
    workerId: 'test',
    secretKeys: { current: 'test-secret-key-0123456789-0123456789' },
    policy,
    dispatchers: createDispatchers(policy),
  };
});
afterAll(async () => {
  await queue?.obliterate({ force: true }).catch(() => {});
  await queue?.close();
  await db?.drop();
});

describe('fireOccurrence', () => {
  it('fails, not strands, a run now whose service was disabled before it was delivered', async () => {
    const service = await insertService(db.db, { id: uuidv7(), name: 'disabled', signingSecret: 'unused' });
    const spec = buildJobSpec(
      { name: 'j', schedule: { every: '1h' }, target: { url: 'http://127.0.0.1:9/' } },
      { now: Date.now() },
    );
    const job = await insertJob(
      db.db,
      {
        ...spec,
        id: uuidv7(),
        serviceId: service.id,
        state: 'active',
        now: new Date(),
        nextRunAt: null,
      },
      ctx.secretKeys,
    );
    const run = await insertRequestedRun(db.db, {
      id: uuidv7(),
      jobId: job.id,
      serviceId: service.id,
      jobVersion: 1,
      trigger: 'manual',
      now: Date.now(),
    });
    await db.db.updateTable('services').set({ disabled_at: new Date() }).where('id', '=', service.id).execute();

    const bullJob = await queue.add(
      'fire',
      { jobId: job.id, version: 1, runId: run.id },
      { jobId: manualJobIdOf(job.id, run.id) },
    );
    const result = await fireOccurrence(ctx, bullJob);
    expect(result).toMatchObject({ outcome: 'skipped', reason: 'service disabled' });
    const after = await findRunById(db.db, run.id);
    expect(after).toMatchObject({ status: 'failed', error: 'service disabled' });
    expect(after?.finished_at).not.toBeNull();
  });

  it('waits for a young occurrence whose job is not visible yet, and drops an old one', async () => {
    const missing = uuidv7();
    const young = await queue.add('fire', { jobId: missing, version: 1 }, { jobId: `once:${missing}:v1` });
    await expect(fireOccurrence(ctx, young)).rejects.toBeInstanceOf(RetryLaterError);

    const other = uuidv7();
    const old = await queue.add(
      'fire',
      { jobId: other, version: 1 },
      { jobId: `once:${other}:v1`, timestamp: Date.now() - 60_000 },
    );
    expect(await fireOccurrence(ctx, old)).toEqual({ outcome: 'gone' });
  });

  /** The occurrence at `at` of the job's every-second scheduler, as BullMQ makes it (the scheduler itself removed). */
  async function schedulerOccurrence(jobId: string, at: number) {
    const scheduler = schedulerIdOf(jobId, 1);
    await queue.upsertJobScheduler(
      scheduler,
      { every: 1_000, startDate: at },
      { name: 'fire', data: { jobId, version: 1 } },
    );
    const occurrence = await queue.getJob(schedulerOccurrenceIdOf(scheduler, at));
    if (!occurrence) throw new Error(`BullMQ did not make the occurrence at ${at}`);
    await queue.removeJobScheduler(scheduler);
    return occurrence;
  }

  /** Fires an occurrence whose target does not answer: it is retried; only the ledger matters here. */
  async function fireLedgerOnly(occurrence: Awaited<ReturnType<typeof schedulerOccurrence>>) {
    await fireOccurrence({ ...ctx, queue: queue as never }, occurrence).catch((error: unknown) => {
      if (!(error instanceof RetryLaterError)) throw error;
    });
  }

  const runsOf = (jobId: string) =>
    db.db
      .selectFrom('runs')
      .select(['id', 'scheduled_for', 'status', 'skip_reason', 'attempts'])
      .where('job_id', '=', jobId)
      .orderBy('scheduled_for')
      .execute();

  /** The job's runs in order, as [ms after t0, status, skip reason]. */
  const ledgerOf = async (jobId: string, t0: number) =>
    (await runsOf(jobId)).map((r) => [r.scheduled_for.getTime() - t0, r.status, r.skip_reason]);

  /**
   * An every-second job of a service of its own, phased at t0 (two seconds ago, on a whole second);
   * with `excludeToday`, listing a calendar that excludes yesterday to tomorrow (UTC).
   */
  async function everySecondJobSince2sAgo(
    name: string,
    options: { excludeToday?: boolean; graceMs?: number; url?: string } = {},
  ) {
    const service = await insertService(db.db, {
      id: uuidv7(),
      name,
      signingSecret: encryptSecret(generateSigningSecret(), ctx.secretKeys.current),
    });
    const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    const calendars = options.excludeToday
      ? [
          (
            await insertCalendar(db.db, {
              id: uuidv7(),
              serviceId: service.id,
              name: 'today',
              timezone: 'UTC',
              dates: [],
              ranges: [{ from: day(-1), to: day(1) }],
              now: new Date(),
            })
          ).id,
        ]
      : undefined;
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 2_000;
    const spec = buildJobSpec(
      {
        name,
        schedule: { every: '1s' },
        startAt: new Date(t0).toISOString(),
        target: { url: options.url ?? 'http://127.0.0.1:9/' },
        misfire: { policy: 'fire_once', graceMs: options.graceMs ?? 600_000 },
        ...(calendars ? { calendars } : {}),
      },
      { now: t0 - 1 },
    );
    const job = await insertJob(
      db.db,
      {
        ...spec,
        id: uuidv7(),
        serviceId: service.id,
        state: 'active',
        now: new Date(t0 - 1),
        nextRunAt: null,
      },
      ctx.secretKeys,
    );
    return { service, job, t0 };
  }

  it('records the slots a timer skipped as missed, but not one whose BullMQ job still exists', async () => {
    const { service, job, t0 } = await everySecondJobSince2sAgo('gaps');
    await recordOccurrence(db.db, {
      id: uuidv7(),
      jobId: job.id,
      serviceId: service.id,
      jobVersion: 1,
      scheduledFor: new Date(t0),
      trigger: 'schedule',
      status: 'succeeded',
    });
    // t0+2s is still pending in BullMQ (a reconciler's catch-up not yet taken): not a skipped slot.
    await queue.add(
      'fire',
      { jobId: job.id, version: 1 },
      { jobId: catchUpJobIdOf(job.id, 1, t0 + 2_000), delay: 60_000 },
    );
    await fireLedgerOnly(await schedulerOccurrence(job.id, t0 + 4_000));
    expect(await ledgerOf(job.id, t0)).toEqual([
      [0, 'succeeded', null],
      [1_000, 'skipped', 'missed'],
      [3_000, 'skipped', 'missed'],
      [4_000, 'retrying', null],
    ]);
  });

  it('records the skipped slots on a takeover when the worker that recorded the run died before it could', async () => {
    const { service, job, t0 } = await everySecondJobSince2sAgo('gaps-takeover');
    const base = { jobId: job.id, serviceId: service.id, jobVersion: 1, trigger: 'schedule' as const };
    await recordOccurrence(db.db, { ...base, id: uuidv7(), scheduledFor: new Date(t0), status: 'succeeded' });
    // The run of t0+3s as the common case commits it, started; its worker died right after.
    const { run } = await recordOccurrence(db.db, {
      ...base,
      id: uuidv7(),
      scheduledFor: new Date(t0 + 3_000),
      status: 'running',
    });
    await db.db.updateTable('runs').set({ attempts: 1, started_at: new Date() }).where('id', '=', run.id).execute();
    await fireLedgerOnly(await schedulerOccurrence(job.id, t0 + 3_000));
    const rows = await runsOf(job.id);
    expect(await ledgerOf(job.id, t0)).toEqual([
      [0, 'succeeded', null],
      [1_000, 'skipped', 'missed'],
      [2_000, 'skipped', 'missed'],
      [3_000, 'retrying', null],
    ]);
    // The same run (the same webhook-id), its second attempt.
    expect(rows[3]).toMatchObject({ id: run.id, attempts: 2 });
  });

  // A resume at the end of a pause: the new version's scheduler and a catch-up for the slot at
  // `until` are enqueued together, and a worker may decide the scheduler's first occurrence
  // before the catch-up. Neither has a run of its version before it, so the slots between them
  // are recorded by whichever is decided second.
  // Late beyond its grace, the catch-up finds the job caught up already (fire_once): recorded missed.
  it.each([
    ['on time', 600_000, 'run'],
    ['late, under the lock', 500, 'missed'],
  ])(
    'records the slots between a catch-up and a later occurrence of its version decided before it (%s)',
    async (_, graceMs, atUntil) => {
      const { job, t0 } = await everySecondJobSince2sAgo(`gaps-out-of-order-${graceMs}`, { graceMs });
      await fireLedgerOnly(await schedulerOccurrence(job.id, t0 + 4_000));
      // Nothing of the version before it, and the catch-up at t0 not decided yet: nothing to record.
      expect(await ledgerOf(job.id, t0)).toEqual([[4_000, 'retrying', null]]);
      await fireLedgerOnly(
        await queue.add('fire', { jobId: job.id, version: 1 }, { jobId: catchUpJobIdOf(job.id, 1, t0) }),
      );
      expect(
        (await ledgerOf(job.id, t0)).map(([at, status, reason]) => [at, status === 'skipped' ? reason : 'run']),
      ).toEqual([
        [0, atUntil],
        [1_000, 'missed'],
        [2_000, 'missed'],
        [3_000, 'missed'],
        [4_000, 'run'],
      ]);
    },
  );

  it('records the slots after a first occurrence of its version whose later one was decided first', async () => {
    const { job, t0 } = await everySecondJobSince2sAgo('gaps-first-after');
    // The version's first occurrence, t0+3s, stalled (its worker killed as it took it); a worker
    // decided t0+6s first, finding no run before it, and the takeover of t0+3s comes only now.
    await fireLedgerOnly(await schedulerOccurrence(job.id, t0 + 6_000));
    await fireLedgerOnly(await schedulerOccurrence(job.id, t0 + 3_000));
    expect(
      (await ledgerOf(job.id, t0)).map(([at, status, reason]) => [at, status === 'skipped' ? reason : 'run']),
    ).toEqual([
      [3_000, 'run'],
      [4_000, 'missed'],
      [5_000, 'missed'],
      [6_000, 'run'],
    ]);
  });

  it('checks the skipped slots on a takeover of an occurrence decided skipped, but not of a paused one', async () => {
    const { service, job, t0 } = await everySecondJobSince2sAgo('gaps-skipped-takeover', { excludeToday: true });
    const base = { jobId: job.id, serviceId: service.id, jobVersion: 1, trigger: 'schedule' as const };
    await recordOccurrence(db.db, { ...base, id: uuidv7(), scheduledFor: new Date(t0), status: 'succeeded' });
    // t0+3s decided `excluded` under the job's lock and committed; its worker died before the slot check.
    const skipped = { ...base, status: 'skipped' as const };
    await recordOccurrence(db.db, {
      ...skipped,
      id: uuidv7(),
      scheduledFor: new Date(t0 + 3_000),
      skipReason: 'excluded',
    });
    expect(
      await fireOccurrence({ ...ctx, queue: queue as never }, await schedulerOccurrence(job.id, t0 + 3_000)),
    ).toMatchObject({
      outcome: 'skipped',
      reason: 'excluded',
    });
    // t0+6s decided `paused`: a paused job owes nothing, so its takeover records no slots.
    await recordOccurrence(db.db, {
      ...skipped,
      id: uuidv7(),
      scheduledFor: new Date(t0 + 6_000),
      skipReason: 'paused',
    });
    await fireOccurrence({ ...ctx, queue: queue as never }, await schedulerOccurrence(job.id, t0 + 6_000));
    expect(await ledgerOf(job.id, t0)).toEqual([
      [0, 'succeeded', null],
      [1_000, 'skipped', 'excluded'],
      [2_000, 'skipped', 'excluded'],
      [3_000, 'skipped', 'excluded'],
      [6_000, 'skipped', 'paused'],
    ]);
  });

  it('records an occurrence on an excluded day, and the slots the timer skipped on one, as excluded', async () => {
    const { service, job, t0 } = await everySecondJobSince2sAgo('holiday', { excludeToday: true });
    await recordOccurrence(db.db, {
      id: uuidv7(),
      jobId: job.id,
      serviceId: service.id,
      jobVersion: 1,
      scheduledFor: new Date(t0),
      trigger: 'schedule',
      status: 'succeeded',
    });
    const result = await fireOccurrence(
      { ...ctx, queue: queue as never },
      await schedulerOccurrence(job.id, t0 + 3_000),
    );
    expect(result).toMatchObject({ outcome: 'skipped', reason: 'excluded', scheduledFor: t0 + 3_000 });
    expect(await ledgerOf(job.id, t0)).toEqual([
      [0, 'succeeded', null],
      [1_000, 'skipped', 'excluded'],
      [2_000, 'skipped', 'excluded'],
      [3_000, 'skipped', 'excluded'],
    ]);
    const row = await db.db.selectFrom('jobs').select('run_count').where('id', '=', job.id).executeTakeFirstOrThrow();
    // The run of t0 only: skipped runs do not count towards maxRuns.
    expect(row.run_count).toBe(1);
  });

  it('completes a one-shot whose instant falls on an excluded day, recorded as excluded', async () => {
    const service = await insertService(db.db, {
      id: uuidv7(),
      name: 'one-shot-holiday',
      signingSecret: encryptSecret(generateSigningSecret(), ctx.secretKeys.current),
    });
    const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    const calendar = await insertCalendar(db.db, {
      id: uuidv7(),
      serviceId: service.id,
      name: 'today',
      timezone: 'UTC',
      dates: [day(-1), day(0), day(1)],
      ranges: [],
      now: new Date(),
    });
    const at = Date.now() - 1_000;
    const spec = buildJobSpec(
      {
        name: 'once',
        schedule: { at: new Date(at).toISOString() },
        target: { url: 'http://127.0.0.1:9/' },
        calendars: [calendar.id],
      },
      { now: at - 1_000 },
    );
    const job = await insertJob(
      db.db,
      {
        ...spec,
        id: uuidv7(),
        serviceId: service.id,
        state: 'active',
        now: new Date(at - 1_000),
        nextRunAt: null,
      },
      ctx.secretKeys,
    );
    const occurrence = await queue.add('fire', { jobId: job.id, version: 1 }, { jobId: `once:${job.id}:v1` });
    const result = await fireOccurrence({ ...ctx, queue: queue as never }, occurrence);
    expect(result).toMatchObject({ outcome: 'skipped', reason: 'excluded', scheduledFor: at });
    const row = await db.db.selectFrom('jobs').select(['state']).where('id', '=', job.id).executeTakeFirstOrThrow();
    expect(row.state).toBe('completed');
  });

  it('delivers an occurrence on a day no calendar excludes, and moves nextRunAt past the excluded days', async () => {
    const service = await insertService(db.db, {
      id: uuidv7(),
      name: 'midnight',
      signingSecret: encryptSecret(generateSigningSecret(), ctx.secretKeys.current),
    });
    const DAY = 86_400_000;
    const midnight = Math.floor(Date.now() / DAY) * DAY;
    const date = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const calendar = await insertCalendar(db.db, {
      id: uuidv7(),
      serviceId: service.id,
      name: 'next-two-days',
      timezone: 'UTC',
      dates: [],
      ranges: [{ from: date(midnight + DAY), to: date(midnight + 2 * DAY) }],
      now: new Date(),
    });
    const spec = buildJobSpec(
      {
        name: 'daily',
        schedule: { cron: '0 0 * * *' },
        target: { url: 'http://127.0.0.1:9/' },
        misfire: { policy: 'fire_once', graceMs: DAY },
        calendars: [calendar.id],
      },
      { now: midnight - DAY },
    );
    const job = await insertJob(
      db.db,
      {
        ...spec,
        id: uuidv7(),
        serviceId: service.id,
        state: 'active',
        now: new Date(midnight - DAY),
        nextRunAt: new Date(midnight),
      },
      ctx.secretKeys,
    );
    const occurrence = await queue.add(
      'fire',
      { jobId: job.id, version: 1 },
      { jobId: catchUpJobIdOf(job.id, 1, midnight) },
    );
    await fireLedgerOnly(occurrence);
    expect((await ledgerOf(job.id, midnight)).map(([at, status]) => [at, status])).toEqual([[0, 'retrying']]);
    const row = await db.db.selectFrom('jobs').select('next_run_at').where('id', '=', job.id).executeTakeFirstOrThrow();
    expect(row.next_run_at?.toISOString()).toBe(new Date(midnight + 3 * DAY).toISOString());
  });

  it('records one run per occurrence when many fire at once, and a second delivery of one finds the same run', async () => {
    // A sink that answers 200 and keeps what each callback said of itself.
    const seen: Array<{ webhookId: string; jobId: string; attempt: string }> = [];
    const sink = createServer((req, res) => {
      seen.push({
        webhookId: String(req.headers['webhook-id']),
        jobId: String(req.headers['tickwork-job-id']),
        attempt: String(req.headers['tickwork-attempt']),
      });
      req.resume().on('end', () => res.end('ok'));
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;
      const jobs = await Promise.all(
        Array.from({ length: 8 }, (_, i) => everySecondJobSince2sAgo(`together-${i}`, { url })),
      );
      const occurrences = await Promise.all(jobs.map(({ job, t0 }) => schedulerOccurrence(job.id, t0 + 4_000)));
      // All at once, as a worker's slots take them: the on-time statements share a group; three
      // occurrences are delivered twice at the same time (a redelivery racing the first).
      const results = await Promise.all(
        [...occurrences, ...occurrences.slice(0, 3)].map((o) => fireOccurrence({ ...ctx, queue: queue as never }, o)),
      );
      expect(results.slice(0, 8).map((r) => r.outcome)).toEqual(Array.from({ length: 8 }, () => 'delivered'));
      for (const [i, { job, t0 }] of jobs.entries()) {
        const delivered = (await runsOf(job.id)).filter((r) => r.status !== 'skipped');
        expect(delivered.map((r) => [r.scheduled_for.getTime() - t0, r.status])).toEqual([[4_000, 'succeeded']]);
        const run = delivered[0]!;
        expect(results[i]).toMatchObject({ outcome: 'delivered', runId: run.id, attempt: 1 });
        // The second delivery continues the same run (its next attempt), or finds it ended already.
        const again = results[8 + i];
        if (again)
          expect(again.outcome === 'delivered' ? [again.runId, again.attempt] : again).toEqual(
            again.outcome === 'delivered' ? [run.id, 2] : { outcome: 'already-ended', runId: run.id },
          );
        const attempts = again?.outcome === 'delivered' ? 2 : 1;
        const calls = seen.filter((c) => c.jobId === job.id);
        // Every callback of the occurrence carries its one run's id: the webhook-id is stable.
        expect(calls.map((c) => c.webhookId)).toEqual(calls.map(() => run.id));
        expect(calls.map((c) => c.attempt).sort()).toEqual(attempts === 2 ? ['1', '2'] : ['1']);
        expect(run.attempts).toBe(attempts);
      }
    } finally {
      await new Promise<void>((resolve) => sink.close(() => resolve()));
    }
  });
});
