/**
 * The group of the on-time statement beyond its verdicts (on-time.properties.test.ts holds those):
 * a bad occurrence fails only its caller, a missing job answers undefined in its place, and the
 * version's neighbours (`tickwork_run_neighbours`) are read under the job's lock: the statement
 * and the transaction path's `runNeighbours` agree, and a run committed while the statement waited
 * for the lock is seen.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';
import { sql } from 'kysely';
import {
  insertJob,
  insertService,
  lockAndRecordOnTime,
  lockAndRecordOnTimeGrouped,
  lockAndRecordOnTimeMany,
  lockJobForFireWithService,
  recordOccurrence,
  runNeighbours,
  type OnTimeOccurrence,
} from '../src/index.ts';

const KEYS = { current: 'test-secret-key-0123456789-0123456789' };
const BASE = Date.parse('2026-06-01T00:00:00Z');

let db: TestDatabase;
let serviceId: string;
beforeAll(async () => {
  db = await createTestDatabase('tw_on_time_group');
  serviceId = (await insertService(db.db, { id: uuidv7(), name: 'svc', signingSecret: 'x' })).id;
});
afterAll(async () => {
  await db?.drop();
});

async function aJob(): Promise<string> {
  const spec = buildJobSpec(
    { name: `j-${uuidv7()}`, schedule: { every: '1m' }, target: { url: 'http://127.0.0.1:9/' } },
    { now: BASE },
  );
  const job = await insertJob(
    db.db,
    { ...spec, id: uuidv7(), serviceId, state: 'active', now: new Date(BASE), nextRunAt: null },
    KEYS,
  );
  return job.id;
}

/** An occurrence due now, of a job that passes every rule. */
const onTime = (jobId: string, scheduledFor = Date.now()): OnTimeOccurrence => ({
  runId: uuidv7(),
  jobId,
  version: 1,
  scheduledFor,
  workerId: 'group-test',
  now: scheduledFor,
  jitterHash: 0,
  mayWait: true,
});

describe('lockAndRecordOnTimeGrouped', () => {
  it('fails only the caller whose row Postgres refuses, and answers undefined for a job that does not exist', async () => {
    const jobs = await Promise.all(Array.from({ length: 5 }, aJob));
    const taken = onTime(jobs[0]!, Date.now() - 60_000);
    await lockAndRecordOnTimeGrouped(db.db, taken);
    const occurrences = jobs.map((id) => onTime(id));
    // A run id already used by another run: the run's primary key refuses the insert.
    occurrences[2]!.runId = taken.runId;
    const missing = onTime(uuidv7());
    const results = await Promise.allSettled(
      [...occurrences, missing].map((o) => lockAndRecordOnTimeGrouped(db.db, o)),
    );
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
    for (const i of [0, 1, 3, 4]) {
      const result = results[i] as PromiseFulfilledResult<Awaited<ReturnType<typeof lockAndRecordOnTimeGrouped>>>;
      expect(result.value?.runId).toBe(occurrences[i]!.runId);
      expect(result.value?.found.job.id).toBe(jobs[i]);
    }
    expect((results[5] as PromiseFulfilledResult<unknown>).value).toBeUndefined();
    const counts = await db.db.selectFrom('jobs').select(['id', 'run_count']).where('id', 'in', jobs).execute();
    expect(new Map(counts.map((c) => [c.id, c.run_count]))).toEqual(
      new Map(jobs.map((id, i) => [id, i === 0 ? 2 : i === 2 ? 0 : 1])),
    );
  });
});

describe('lockAndRecordOnTimeMany', () => {
  it('refuses two occurrences of one job in one statement, writing nothing', async () => {
    const job = await aJob();
    const at = Date.now();
    await expect(lockAndRecordOnTimeMany(db.db, [onTime(job, at), onTime(job, at + 60_000)])).rejects.toThrow(
      'one occurrence per job',
    );
    const row = await db.db.selectFrom('jobs').select('run_count').where('id', '=', job).executeTakeFirstOrThrow();
    expect(row.run_count).toBe(0);
  });
});

describe("the version's neighbours, read under the job's lock", () => {
  const at = (minutes: number) => new Date(BASE + minutes * 60_000);
  const run = (jobId: string, minutes: number, version = 1, trigger: 'schedule' | 'manual' = 'schedule') =>
    recordOccurrence(db.db, {
      id: uuidv7(),
      jobId,
      serviceId,
      jobVersion: version,
      scheduledFor: at(minutes),
      trigger,
      status: 'succeeded',
    });

  it("answers the version's scheduled runs just before and after an instant, in the statement as in runNeighbours", async () => {
    const [a, b] = await Promise.all([aJob(), aJob()]);
    // Job a: runs of version 1 at 1 and 5, of version 2 at 3, a manual run at 4; job b: none.
    await run(a!, 1);
    await run(a!, 5);
    await run(a!, 3, 2);
    await run(a!, 4, 1, 'manual');
    const asked: Array<[string, number, number]> = [
      [a!, 1, 3],
      [a!, 1, 0],
      [a!, 1, 6],
      [a!, 1, 5],
      [a!, 2, 2],
      [b!, 1, 3],
    ];
    const read = await Promise.all(
      asked.map(([job, version, minutes]) => runNeighbours(db.db, job, version, at(minutes))),
    );
    expect(read).toEqual([
      { previous: at(1), next: at(5) },
      { previous: undefined, next: at(1) },
      { previous: at(5), next: undefined },
      { previous: at(1), next: undefined },
      { previous: undefined, next: at(3) },
      { previous: undefined, next: undefined },
    ]);
    // The on-time statement (which records nothing here: a missed occurrence, far past its grace)
    // reads the same, and so does its group of several jobs.
    const stale = (job: string, minutes: number): OnTimeOccurrence => ({
      ...onTime(job, at(minutes).getTime()),
      now: Date.now(),
    });
    expect((await lockAndRecordOnTime(db.db, stale(a!, 3)))?.neighbours).toEqual(read[0]);
    const many = await lockAndRecordOnTimeMany(db.db, [stale(a!, 6), stale(b!, 3)]);
    expect(many.map((r) => r?.runId)).toEqual([undefined, undefined]);
    expect(many.map((r) => r?.neighbours)).toEqual([read[2], read[5]]);
  });

  it('sees a run of the job committed while the statement waited for its lock', async () => {
    const job = await aJob();
    const now = Date.now();
    const minute = 60_000;
    // Before the statement starts, the version's latest run is two minutes back.
    await recordOccurrence(db.db, {
      id: uuidv7(),
      jobId: job,
      serviceId,
      jobVersion: 1,
      scheduledFor: new Date(now - 2 * minute),
      trigger: 'schedule',
      status: 'succeeded',
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked!: (pid: number) => void;
    const isLocked = new Promise<number>((resolve) => {
      locked = resolve;
    });
    // Another decision holds the job's lock and records the occurrence one minute back.
    const holder = db.db.transaction().execute(async (trx) => {
      await lockJobForFireWithService(trx, job);
      await recordOccurrence(trx, {
        id: uuidv7(),
        jobId: job,
        serviceId,
        jobVersion: 1,
        scheduledFor: new Date(now - minute),
        trigger: 'schedule',
        status: 'running',
      });
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
      locked(rows[0]!.pid);
      await released;
    });
    const holderPid = await isLocked;
    const statement = lockAndRecordOnTime(db.db, onTime(job, now));
    // Commit only once the statement is waiting for the lock, so its snapshot predates the run.
    // The deadline is within the test's own timeout; the lock is let go whatever happens, so a
    // failure never leaves the holder's transaction open (and the database undroppable).
    const deadline = Date.now() + 4_000;
    try {
      for (;;) {
        const { rows } = await sql<{ n: string }>`
          select count(*)::text as n from pg_stat_activity where ${holderPid}::int = any(pg_blocking_pids(pid))
        `.execute(db.db);
        if (rows[0]?.n !== '0') break;
        if (Date.now() > deadline) throw new Error('the on-time statement never waited for the lock');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } finally {
      release();
      await holder;
    }
    const record = await statement;
    expect(record?.runId).toBeDefined();
    expect(record?.neighbours).toEqual({ previous: new Date(now - minute), next: undefined });
  });
});
