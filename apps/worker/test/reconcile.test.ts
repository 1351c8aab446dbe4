/**
 * The reconciler against a real Postgres and Redis: it rebuilds what Redis lost, restarts
 * schedulers that stopped, removes what no job accounts for, catches up once, and a second pass
 * finds nothing to do.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { buildJobSpec, nextRunOf, uuidv7, type CreateJobBody } from '@tickwork/core';
import { insertJob, insertRequestedRun, insertService, jobFromRow, recordOccurrence, type JobRow } from '@tickwork/db';
import { createTestDatabase, testBaseUrls, testPrefix, type TestDatabase, deletePrefix } from '@tickwork/testkit';
import {
  FireQueue,
  catchUpJobIdOf,
  manualJobIdOf,
  onceJobIdOf,
  replayJobIdOf,
  schedulerIdOf,
  schedulerOccurrenceIdOf,
} from '@tickwork/queue';
import { reconcile, type ReconcileMode, type RepairKind } from '../src/reconcile.ts';

let db: TestDatabase;
let fireQueue: FireQueue;
let redis: Redis;
let prefix: string;
let serviceId: string;

beforeAll(async () => {
  db = await createTestDatabase('tw_reconcile');
  prefix = testPrefix();
  fireQueue = new FireQueue({ redisUrl: testBaseUrls().redisUrl, prefix });
  redis = new Redis(testBaseUrls().redisUrl);
  const service = await insertService(db.db, { id: uuidv7(), name: 'reconcile', signingSecret: 'x' });
  serviceId = service.id;
});

afterAll(async () => {
  await fireQueue?.close();
  if (redis) {
    await deletePrefix(testBaseUrls().redisUrl, prefix);
    redis.disconnect();
  }
  await db?.drop();
});

beforeEach(async () => {
  await sql`delete from jobs`.execute(db.db);
  await deletePrefix(testBaseUrls().redisUrl, prefix);
});

let names = 0;
/** A job row as the api would write it; registered in Redis unless told otherwise. */
async function aJob(
  schedule: CreateJobBody['schedule'],
  options: { register?: boolean; createdAt?: number } = {},
): Promise<JobRow> {
  const now = options.createdAt ?? Date.now();
  const spec = buildJobSpec({ name: `job-${++names}`, schedule, target: { url: 'http://127.0.0.1:9/' } }, { now });
  const id = uuidv7(now);
  const draft = { ...spec, id, serviceId, state: 'active' as const, version: 1, createdAt: now, updatedAt: now };
  const next = nextRunOf(draft, now);
  const row = await insertJob(db.db, {
    ...spec,
    id,
    serviceId,
    state: 'active',
    now: new Date(now),
    nextRunAt: next === null ? null : new Date(next),
  });
  if (options.register !== false) await fireQueue.register(jobFromRow(row), now);
  return row;
}

function pass(now?: number, mode: ReconcileMode = 'sweep') {
  const counted: Partial<Record<RepairKind, number>> = {};
  return reconcile({
    db: db.db,
    fireQueue,
    mode,
    ...(now === undefined ? {} : { now }),
    pageSize: 2,
    onRepair: (kind, count) => {
      counted[kind] = (counted[kind] ?? 0) + count;
    },
  }).then((report) => ({ ...report, counted }));
}

async function schedulerIds(): Promise<string[]> {
  return (await fireQueue.queue.getJobSchedulers(0, -1)).map((s) => s.key).sort();
}

describe('reconcile', () => {
  it('finds nothing to repair when Redis matches Postgres', async () => {
    await aJob({ every: '1s' });
    await aJob({ cron: '*/5 * * * *', timezone: 'Europe/Berlin' });
    await aJob({ at: new Date(Date.now() + 60_000).toISOString() });
    const report = await pass();
    expect(report.jobs).toBe(3);
    expect(report.repairs).toEqual({ missing: 0, stuck: 0, catchup: 0, stale: 0, orphan: 0, run: 0, moved: 0 });
    expect(report.counted).toEqual({});
  });

  it('rebuilds every registration after Redis lost its data, pages through all jobs, then is idempotent', async () => {
    const jobs = [
      await aJob({ every: '1m' }),
      await aJob({ every: '10s' }),
      await aJob({ cron: '0 9 * * *', timezone: 'Europe/Berlin' }),
      await aJob({ at: new Date(Date.now() + 60_000).toISOString() }),
      await aJob({ every: '1h' }),
    ];
    await deletePrefix(testBaseUrls().redisUrl, prefix);

    const first = await pass();
    expect(first.jobs).toBe(5);
    expect(first.repairs.missing).toBe(5);
    expect(first.counted.missing).toBe(5);
    const recurring = jobs.filter((j) => !('at' in (j.schedule as object)));
    expect(await schedulerIds()).toEqual(recurring.map((j) => schedulerIdOf(j.id, 1)).sort());
    expect(await fireQueue.queue.getJob(onceJobIdOf(jobs[3]!.id, 1))).toBeDefined();
    // The interval's phase survives: the next occurrence is the job's own, not "now".
    const every10 = await fireQueue.queue.getJobScheduler(schedulerIdOf(jobs[1]!.id, 1));
    expect((every10!.next! - jobs[1]!.created_at.getTime()) % 10_000).toBe(0);

    const second = await pass();
    expect(second.repairs).toEqual({ missing: 0, stuck: 0, catchup: 0, stale: 0, orphan: 0, run: 0, moved: 0 });
  });

  it('catches up once with the latest missed occurrence, not with every one', async () => {
    const createdAt = Date.now() - 10_500;
    const job = await aJob({ every: '1s' }, { createdAt });
    await deletePrefix(testBaseUrls().redisUrl, prefix);
    const now = Date.now();
    const report = await pass(now);
    expect(report.repairs).toMatchObject({ missing: 1, catchup: 1 });
    const latest = createdAt + Math.floor((now - createdAt) / 1_000) * 1_000;
    const catchUp = await fireQueue.queue.getJob(catchUpJobIdOf(job.id, 1, latest));
    expect(catchUp?.data).toEqual({ jobId: job.id, version: 1 });
    const waiting = await fireQueue.queue.getJobs(['wait', 'delayed', 'prioritized']);
    expect(waiting.filter((j) => j.id?.startsWith('catchup:'))).toHaveLength(1);
    // The scheduler resumes after "now", on the job's phase.
    const scheduler = await fireQueue.queue.getJobScheduler(schedulerIdOf(job.id, 1));
    expect(scheduler!.next).toBeGreaterThan(now);
    expect((scheduler!.next! - createdAt) % 1_000).toBe(0);
  });

  it('catches up with a one-shot whose instant passed while its BullMQ job was lost', async () => {
    const job = await aJob({ at: new Date(Date.now() + 1_000).toISOString() });
    await deletePrefix(testBaseUrls().redisUrl, prefix);
    const report = await pass(Date.now() + 2_000);
    expect(report.repairs.catchup).toBe(1);
    expect(await fireQueue.queue.getJob(onceJobIdOf(job.id, 1))).toBeDefined();
    expect((await pass(Date.now() + 2_000)).repairs.catchup).toBe(0);
  });

  it('restarts a scheduler that has no pending next occurrence (BullMQ #3272, #3381)', async () => {
    const job = await aJob({ every: '1m' });
    const scheduler = await fireQueue.queue.getJobScheduler(schedulerIdOf(job.id, 1));
    const pendingId = schedulerOccurrenceIdOf(schedulerIdOf(job.id, 1), scheduler!.next!);
    expect(await fireQueue.queue.getJob(pendingId)).toBeDefined();
    // What a scheduler that silently stopped looks like: its entry points at no pending job.
    await redis.multi().del(fireQueue.queue.toKey(pendingId)).zrem(fireQueue.queue.toKey('delayed'), pendingId).exec();

    const report = await pass();
    expect(report.repairs.stuck).toBe(1);
    const restarted = await fireQueue.queue.getJobScheduler(schedulerIdOf(job.id, 1));
    expect(
      await fireQueue.queue.getJob(schedulerOccurrenceIdOf(schedulerIdOf(job.id, 1), restarted!.next!)),
    ).toBeDefined();
    expect((await pass()).repairs.stuck).toBe(0);
  });

  it('replaces a scheduler of an old version with the current one', async () => {
    const job = await aJob({ every: '1m' });
    await sql`update jobs set version = 2 where id = ${job.id}`.execute(db.db);
    const report = await pass();
    expect(report.repairs).toMatchObject({ missing: 1, stale: 1 });
    expect(await schedulerIds()).toEqual([schedulerIdOf(job.id, 2)]);
  });

  it('removes schedulers of deleted, paused and unknown jobs, sparing one an api may be committing', async () => {
    const deleted = await aJob({ every: '1m' });
    const paused = await aJob({ every: '1m' });
    const kept = await aJob({ every: '1m' });
    await sql`delete from jobs where id = ${deleted.id}`.execute(db.db);
    await sql`update jobs set state = 'paused' where id = ${paused.id}`.execute(db.db);
    // A job created long ago that Postgres never had: no transaction can still be committing it.
    const ancient = uuidv7(Date.now() - 3_600_000);
    await fireQueue.queue.upsertJobScheduler(
      schedulerIdOf(ancient, 1),
      { every: 60_000 },
      { name: 'fire', data: { jobId: ancient, version: 1 } },
    );

    const first = await pass();
    expect(first.repairs.orphan).toBe(1);
    expect(first.suspects).toBe(2);
    expect(await schedulerIds()).toEqual(
      [schedulerIdOf(deleted.id, 1), schedulerIdOf(paused.id, 1), schedulerIdOf(kept.id, 1)].sort(),
    );

    const second = await pass();
    expect(second.repairs.orphan).toBe(2);
    expect(await schedulerIds()).toEqual([schedulerIdOf(kept.id, 1)]);
    expect((await pass()).repairs).toEqual({ missing: 0, stuck: 0, catchup: 0, stale: 0, orphan: 0, run: 0, moved: 0 });
  });

  it('enqueues again a run that waited for a retry when Redis lost its data, under its run id', async () => {
    const job = await aJob({ every: '1m' });
    const scheduledFor = Date.now() - 5 * 60_000;
    const { run } = await recordOccurrence(db.db, {
      id: uuidv7(),
      jobId: job.id,
      serviceId,
      jobVersion: 1,
      scheduledFor: new Date(scheduledFor),
      trigger: 'schedule',
      status: 'retrying',
    });
    await sql`update runs set created_at = now() - interval '5 minutes' where id = ${run.id}`.execute(db.db);
    // A young open run may be between Postgres and Redis: left alone.
    const young = await recordOccurrence(db.db, {
      id: uuidv7(),
      jobId: job.id,
      serviceId,
      jobVersion: 1,
      scheduledFor: new Date(scheduledFor + 60_000),
      trigger: 'schedule',
      status: 'retrying',
    });
    expect(young.created).toBe(true);

    const report = await pass();
    expect(report.repairs.run).toBe(1);
    const requeued = await fireQueue.queue.getJob(catchUpJobIdOf(job.id, 1, scheduledFor));
    expect(requeued?.data).toEqual({ jobId: job.id, version: 1 });
    expect((await pass()).repairs.run).toBe(0);
  });

  it('enqueues again a run now and a replay that Redis lost before a worker took them, naming their runs', async () => {
    const job = await aJob({ every: '1h' });
    const requested = async (trigger: 'manual' | 'replay') => {
      const run = await insertRequestedRun(db.db, {
        id: uuidv7(),
        jobId: job.id,
        serviceId,
        jobVersion: 1,
        trigger,
        now: Date.now(),
      });
      await sql`update runs set created_at = now() - interval '5 minutes' where id = ${run.id}`.execute(db.db);
      return run;
    };
    const manual = await requested('manual');
    const replay = await requested('replay');
    // A young one may still be on its way to Redis: left alone.
    await insertRequestedRun(db.db, {
      id: uuidv7(),
      jobId: job.id,
      serviceId,
      jobVersion: 1,
      trigger: 'manual',
      now: Date.now() + 1_000,
    });

    const report = await pass();
    expect(report.repairs.run).toBe(2);
    expect((await fireQueue.queue.getJob(manualJobIdOf(job.id, manual.id)))?.data).toEqual({
      jobId: job.id,
      version: 1,
      runId: manual.id,
    });
    expect((await fireQueue.queue.getJob(replayJobIdOf(job.id, replay.id)))?.data).toEqual({
      jobId: job.id,
      version: 1,
      runId: replay.id,
    });
    expect((await pass()).repairs.run).toBe(0);
  });

  it('runs one pass at a time: a pass that meets another one skips', async () => {
    await aJob({ every: '1m' });
    await deletePrefix(testBaseUrls().redisUrl, prefix);
    const [a, b] = await Promise.all([pass(), pass()]);
    expect([a.skipped, b.skipped].filter(Boolean)).toEqual(['another pass is running']);
    expect(a.repairs.missing + b.repairs.missing).toBe(1);
    expect((await pass()).skipped).toBeUndefined();
  });

  it('leaves a suspect that its transaction committed in the meantime', async () => {
    const job = await aJob({ every: '1m' });
    await sql`update jobs set state = 'paused' where id = ${job.id}`.execute(db.db);
    expect((await pass()).suspects).toBe(1);
    await sql`update jobs set state = 'active' where id = ${job.id}`.execute(db.db);
    const report = await pass();
    expect(report.repairs.orphan).toBe(0);
    expect(await schedulerIds()).toEqual([schedulerIdOf(job.id, 1)]);
  });
});

/** Moves a job's rows back in time: changed an hour ago, its next run as given. */
async function age(jobId: string, nextRunAt: number): Promise<void> {
  await sql`update jobs set updated_at = now() - interval '1 hour', next_run_at = ${new Date(nextRunAt)}
    where id = ${jobId}`.execute(db.db);
}

describe('reconcile, steady pass', () => {
  const none = { missing: 0, stuck: 0, catchup: 0, stale: 0, orphan: 0, run: 0 };

  it('reads only what changed or fell overdue: healthy jobs changed long ago cost nothing', async () => {
    const jobs = [await aJob({ every: '1m' }), await aJob({ every: '1h' }), await aJob({ every: '5m' })];
    for (const job of jobs) await age(job.id, Date.now() + 60_000);
    expect((await pass()).mode).toBe('sweep');
    const steady = await pass(undefined, 'steady');
    expect(steady).toMatchObject({ mode: 'steady', jobs: 0, repairs: none });
    // One changes: the next pass reads that one.
    await sql`update jobs set updated_at = now() where id = ${jobs[1]!.id}`.execute(db.db);
    expect(await pass(undefined, 'steady')).toMatchObject({ jobs: 1, repairs: none });
  });

  it('finds a scheduler that silently stopped once its job is overdue', async () => {
    const job = await aJob({ every: '1m' });
    await pass();
    const scheduler = await fireQueue.queue.getJobScheduler(schedulerIdOf(job.id, 1));
    const pendingId = schedulerOccurrenceIdOf(schedulerIdOf(job.id, 1), scheduler!.next!);
    await redis.multi().del(fireQueue.queue.toKey(pendingId)).zrem(fireQueue.queue.toKey('delayed'), pendingId).exec();
    // Not overdue yet: nothing shows, nothing is read.
    await age(job.id, Date.now() + 30_000);
    expect(await pass(undefined, 'steady')).toMatchObject({ jobs: 0, repairs: none });
    // Its occurrence was due 20 s ago and no run moved next_run_at on: looked at, restarted.
    await age(job.id, Date.now() - 20_000);
    const report = await pass(undefined, 'steady');
    expect(report.repairs.stuck).toBe(1);
    const restarted = await fireQueue.queue.getJobScheduler(schedulerIdOf(job.id, 1));
    expect(
      await fireQueue.queue.getJob(schedulerOccurrenceIdOf(schedulerIdOf(job.id, 1), restarted!.next!)),
    ).toBeDefined();
  });

  it('finds a scheduler that Redis lost once its job is overdue, and catches up once', async () => {
    const job = await aJob({ every: '10s' }, { createdAt: Date.now() - 60_000 });
    await pass();
    await fireQueue.queue.removeJobScheduler(schedulerIdOf(job.id, 1));
    await age(job.id, Date.now() - 20_000);
    const report = await pass(undefined, 'steady');
    expect(report.repairs).toMatchObject({ missing: 1, catchup: 1 });
    expect(await schedulerIds()).toEqual([schedulerIdOf(job.id, 1)]);
  });

  it('repairs a job the api changed since the last pass: stale version, then a paused one', async () => {
    const job = await aJob({ every: '1m' });
    const other = await aJob({ every: '1m' });
    await pass();
    await sql`update jobs set version = 2, updated_at = now() where id = ${job.id}`.execute(db.db);
    expect((await pass(undefined, 'steady')).repairs).toMatchObject({ missing: 1, stale: 1 });
    expect(await schedulerIds()).toEqual([schedulerIdOf(job.id, 2), schedulerIdOf(other.id, 1)].sort());

    await sql`update jobs set state = 'paused', updated_at = now() where id = ${other.id}`.execute(db.db);
    // A suspect first (its api may be committing a resume), removed by the next pass.
    expect(await pass(undefined, 'steady')).toMatchObject({ suspects: 1, repairs: none });
    expect((await pass(undefined, 'steady')).repairs.orphan).toBe(1);
    expect(await schedulerIds()).toEqual([schedulerIdOf(job.id, 2)]);
  });

  it('auto: sweeps when the marks are gone (Redis lost its data), then runs steady passes', async () => {
    await aJob({ every: '1m' });
    await deletePrefix(testBaseUrls().redisUrl, prefix);
    const first = await pass(undefined, 'auto');
    // The rebuild registers every job and leaves the orphans to the next sweep: Redis was empty.
    expect(first).toMatchObject({ mode: 'sweep', schedulers: 0, repairs: { missing: 1 } });
    expect((await pass(undefined, 'auto')).mode).toBe('steady');
    const always = await reconcile({ db: db.db, fireQueue, mode: 'auto', sweepIntervalMs: 0 });
    expect(always).toMatchObject({ mode: 'sweep', schedulers: 1 });
  });
});
