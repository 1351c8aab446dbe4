/**
 * The group of the on-time statement beyond its verdicts (on-time.properties.test.ts holds those):
 * a bad occurrence fails only its caller, a missing job answers undefined in its place, and the
 * grouped read of a version's neighbours answers what the two reads it replaces answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';
import {
  firstScheduledAfter,
  insertJob,
  insertService,
  lastScheduledBefore,
  lockAndRecordOnTimeGrouped,
  lockAndRecordOnTimeMany,
  recordOccurrence,
  scheduledNeighboursGrouped,
  scheduledNeighboursMany,
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

describe('scheduledNeighboursGrouped', () => {
  it("answers each occurrence's previous and next recorded instant of its version, as the two reads do", async () => {
    const [a, b] = await Promise.all([aJob(), aJob()]);
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
    // Job a: runs of version 1 at 1 and 5, of version 2 at 3, a manual run at 4; job b: none.
    await run(a!, 1);
    await run(a!, 5);
    await run(a!, 3, 2);
    await run(a!, 4, 1, 'manual');
    const asked = [
      { jobId: a!, version: 1, scheduledFor: at(3).getTime() },
      { jobId: a!, version: 1, scheduledFor: at(0).getTime() },
      { jobId: a!, version: 1, scheduledFor: at(6).getTime() },
      { jobId: a!, version: 1, scheduledFor: at(5).getTime() },
      { jobId: a!, version: 2, scheduledFor: at(2).getTime() },
      { jobId: b!, version: 1, scheduledFor: at(3).getTime() },
    ];
    const expected = await Promise.all(
      asked.map(async (o) => ({
        previous: await lastScheduledBefore(db.db, o.jobId, o.version, new Date(o.scheduledFor)),
        next: await firstScheduledAfter(db.db, o.jobId, o.version, new Date(o.scheduledFor)),
      })),
    );
    expect(expected.slice(0, 5)).toEqual([
      { previous: at(1), next: at(5) },
      { previous: undefined, next: at(1) },
      { previous: at(5), next: undefined },
      { previous: at(1), next: undefined },
      { previous: undefined, next: at(3) },
    ]);
    expect(await scheduledNeighboursMany(db.db, asked)).toEqual(expected);
    expect(await Promise.all(asked.map((o) => scheduledNeighboursGrouped(db.db, o)))).toEqual(expected);
  });
});
