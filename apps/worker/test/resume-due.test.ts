/**
 * Pause-until's worker half, and the history's retention, against a real Postgres and Redis: a
 * pass resumes exactly the jobs whose `until` has come, registers them before its commit (nothing
 * changes when Redis refuses), enqueues the occurrence at `until`, and records the resume as made
 * by whoever paused. The prune removes a deleted job's history after the retention, only then.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { buildJobSpec, nextRunOf, uuidv7, type CreateJobBody } from '@tickwork/core';
import {
  deleteJobRecorded,
  findJobById,
  insertJobRecorded,
  insertService,
  listVersions,
  recordVersion,
  updateJob,
  type JobRow,
} from '@tickwork/db';
import { FireQueue, catchUpJobIdOf, schedulerIdOf } from '@tickwork/queue';
import {
  createTestDatabase,
  deletePrefix,
  freePort,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
} from '@tickwork/testkit';
import { prunePass } from '../src/prune.ts';
import { resumeDuePass } from '../src/resume-due.ts';

let db: TestDatabase;
let fireQueue: FireQueue;
let redisAway: FireQueue;
let prefix: string;
let serviceId: string;
const actor = { kind: 'key' as const, id: 'key-that-paused' };
const silent = pino({ level: 'silent' });

beforeAll(async () => {
  db = await createTestDatabase('tw_resume_due');
  prefix = testPrefix();
  fireQueue = new FireQueue({ redisUrl: testBaseUrls().redisUrl, prefix });
  redisAway = new FireQueue({ redisUrl: `redis://127.0.0.1:${await freePort()}`, prefix, timeoutMs: 300 });
  serviceId = (await insertService(db.db, { id: uuidv7(), name: 'resume-due', signingSecret: 'x' })).id;
});

afterAll(async () => {
  await Promise.allSettled([fireQueue?.close(), redisAway?.close()]);
  if (prefix) await deletePrefix(testBaseUrls().redisUrl, prefix);
  await db?.drop();
});

let names = 0;
/** A job created `createdAt`, then paused until `until` by `actor`, as the api writes both. */
async function pausedJob(schedule: CreateJobBody['schedule'], createdAt: number, until: number): Promise<JobRow> {
  const spec = buildJobSpec(
    { name: `job-${++names}`, schedule, target: { url: 'http://127.0.0.1:9/' } },
    {
      now: createdAt,
    },
  );
  const id = uuidv7(createdAt);
  const draft = { ...spec, id, serviceId, state: 'active' as const, version: 1, createdAt, updatedAt: createdAt };
  const next = nextRunOf(draft, createdAt);
  const stamp = (change: 'create' | 'pause') => ({ id: uuidv7(), change, actor, at: new Date() });
  await insertJobRecorded(
    db.db,
    {
      ...spec,
      id,
      serviceId,
      state: 'active',
      now: new Date(createdAt),
      nextRunAt: next === null ? null : new Date(next),
    },
    stamp('create'),
  );
  return db.db.transaction().execute(async (trx) => {
    const row = await updateJob(trx, id, {
      state: 'paused',
      version: 2,
      nextRunAt: null,
      now: new Date(createdAt),
      pausedUntil: new Date(until),
    });
    await recordVersion(trx, id, stamp('pause'));
    return row;
  });
}

describe('resume-due', () => {
  it('resumes a job whose until has come, its occurrence at until enqueued; leaves the others', async () => {
    const now = Date.now();
    // Every 10 s from `created`: `until` is an occurrence instant, one second ago.
    const created = now - 61_000;
    const until = created + 60_000;
    const due = await pausedJob({ every: '10s' }, created, until);
    const later = await pausedJob({ every: '10s' }, created, now + 60_000);

    const result = await resumeDuePass({ db: db.db, fireQueue, now: () => now }, silent);
    expect(result).toEqual({ resumed: 1, completed: 0 });
    const row = await findJobById(db.db, due.id);
    expect(row).toMatchObject({ state: 'active', version: 3, paused_until: null });
    expect(row?.next_run_at?.getTime()).toBe(until);
    expect(await fireQueue.queue.getJobScheduler(schedulerIdOf(due.id, 3))).toBeTruthy();
    expect(await fireQueue.queue.getJob(catchUpJobIdOf(due.id, 3, until))).toBeTruthy();
    const history = await listVersions(db.db, serviceId, due.id, { limit: 10 });
    expect(history.items.map((v) => [v.change, v.version, v.actor_kind, v.actor_id])).toEqual([
      ['resume', 3, 'key', actor.id],
      ['pause', 2, 'key', actor.id],
      ['create', 1, 'key', actor.id],
    ]);
    expect(history.items[0]?.definition).toMatchObject({ state: 'active', version: 3, paused_until: null });
    expect(await findJobById(db.db, later.id)).toMatchObject({ state: 'paused', version: 2 });

    // A second pass finds nothing to do.
    expect(await resumeDuePass({ db: db.db, fireQueue, now: () => now }, silent)).toEqual({ resumed: 0, completed: 0 });
  });

  it('changes nothing while Redis refuses the registration, and resumes on a later pass', async () => {
    const now = Date.now();
    const job = await pausedJob({ every: '10s' }, now - 30_000, now - 500);
    expect(await resumeDuePass({ db: db.db, fireQueue: redisAway, now: () => now }, silent)).toEqual({
      resumed: 0,
      completed: 0,
    });
    expect(await findJobById(db.db, job.id)).toMatchObject({ state: 'paused', version: 2 });
    expect((await listVersions(db.db, serviceId, job.id, { limit: 10 })).items.map((v) => v.change)).toEqual([
      'pause',
      'create',
    ]);
    expect(await resumeDuePass({ db: db.db, fireQueue, now: () => now }, silent)).toMatchObject({ resumed: 1 });
    expect(await findJobById(db.db, job.id)).toMatchObject({ state: 'active', version: 3 });
  });

  it('completes a job with nothing left after until', async () => {
    const now = Date.now();
    const job = await pausedJob({ at: new Date(now + 60_000).toISOString() }, now - 1_000, now + 120_000);
    // (The pass also resumes the first test's later job, due by then.)
    const result = await resumeDuePass({ db: db.db, fireQueue, now: () => now + 121_000 }, silent);
    expect(result).toMatchObject({ completed: 1 });
    expect(await findJobById(db.db, job.id)).toMatchObject({ state: 'completed', version: 3, next_run_at: null });
  });
});

describe('history retention', () => {
  it("prunes a deleted job's history once the delete is older than the retention, and a live job's never", async () => {
    const now = Date.now();
    const gone = await pausedJob({ every: '10s' }, now - 1_000, now + 60_000);
    const recent = await pausedJob({ every: '10s' }, now - 1_000, now + 60_000);
    const live = await pausedJob({ every: '10s' }, now - 1_000, now + 60_000);
    await deleteJobRecorded(db.db, serviceId, gone.id, {
      id: uuidv7(),
      change: 'delete',
      actor,
      at: new Date(now - 8 * 86_400_000),
    });
    await deleteJobRecorded(db.db, serviceId, recent.id, {
      id: uuidv7(),
      change: 'delete',
      actor,
      at: new Date(now - 6 * 86_400_000),
    });
    // Entries of a live job written long ago stay too.
    await db.db
      .updateTable('job_versions')
      .set({ changed_at: new Date(now - 30 * 86_400_000) })
      .where('job_id', '=', live.id)
      .execute();

    const result = await prunePass({ db: db.db, retentionDays: 7, batchSize: 1, now: () => now }, silent);
    expect(result.versions).toBe(3);
    const left = async (id: string) =>
      (await listVersions(db.db, serviceId, id, { limit: 10 })).items.map((v) => v.change);
    expect(await left(gone.id)).toEqual([]);
    expect(await left(recent.id)).toEqual(['delete', 'pause', 'create']);
    expect(await left(live.id)).toEqual(['pause', 'create']);
  });
});
