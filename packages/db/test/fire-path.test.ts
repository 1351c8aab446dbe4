import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { createTestDatabase, type TestDatabase } from '../src/testing.ts';
import { finishAttempt, insertJob, insertService, startOccurrence } from '../src/index.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function aJob() {
  const service = await insertService(db.db, { id: uuidv7(), name: `svc-${uuidv7()}`, signingSecret: 'x' });
  const spec = buildJobSpec({ name: 'fast', schedule: { every: '1s' }, target: { url: 'http://127.0.0.1:9/' } }, { now: Date.now() });
  return insertJob(db.db, { ...spec, id: uuidv7(), serviceId: service.id, state: 'active', now: new Date(), nextRunAt: null });
}

const occurrence = (job: { id: string; service_id: string }, scheduledFor: Date) => ({
  id: uuidv7(),
  jobId: job.id,
  serviceId: job.service_id,
  jobVersion: 1,
  scheduledFor,
  trigger: 'schedule' as const,
});

describe('fire path (one statement per step)', () => {
  it('records the occurrence once, however many deliveries race, and counts attempts on one run', async () => {
    const job = await aJob();
    const scheduledFor = new Date('2026-01-01T00:00:00Z');
    const results = await Promise.all(Array.from({ length: 10 }, () => startOccurrence(db.db, occurrence(job, scheduledFor), 'w')));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.run.id)).size).toBe(1);
    const row = await db.db.selectFrom('runs').selectAll().where('job_id', '=', job.id).executeTakeFirstOrThrow();
    expect(row.attempts).toBe(10);
    expect(row.started_at).not.toBeNull();
    const counted = await db.db.selectFrom('jobs').select('run_count').where('id', '=', job.id).executeTakeFirstOrThrow();
    expect(counted.run_count).toBe(1);
  });

  it('writes the outcome on the run and the job together, and a redelivery of an ended run starts nothing', async () => {
    const job = await aJob();
    const scheduledFor = new Date('2026-01-01T00:00:01Z');
    const first = await startOccurrence(db.db, occurrence(job, scheduledFor), 'w1');
    expect(first.ended).toBe(false);
    const nextRunAt = new Date('2026-01-01T00:00:02Z');
    await finishAttempt(
      db.db,
      { id: first.run.id, jobId: job.id },
      { status: 'succeeded', httpStatus: 200, durationMs: 3, responseExcerpt: 'ok', error: null },
      { nextRunAt, complete: false },
    );
    const run = await db.db.selectFrom('runs').selectAll().where('id', '=', first.run.id).executeTakeFirstOrThrow();
    expect(run).toMatchObject({ status: 'succeeded', http_status: 200, attempts: 1, worker_id: 'w1' });
    expect(run.finished_at).not.toBeNull();
    const after = await db.db.selectFrom('jobs').selectAll().where('id', '=', job.id).executeTakeFirstOrThrow();
    expect(after.last_run_status).toBe('succeeded');
    expect(after.next_run_at?.getTime()).toBe(nextRunAt.getTime());

    const again = await startOccurrence(db.db, occurrence(job, scheduledFor), 'w2');
    expect(again).toMatchObject({ ended: true, created: false, run: { id: first.run.id } });
  });
});
