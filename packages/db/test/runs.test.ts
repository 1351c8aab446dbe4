import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';
import {
  abandonRun,
  findRunById,
  insertJob,
  insertService,
  listRunsOfJob,
  recordOccurrence,
  startAttempt,
} from '../src/index.ts';
import { migrateToLatest } from '../src/migrate.ts';

/** Seals the target headers the test's jobs are written with. */
const KEYS = { current: 'test-secret-key-0123456789-0123456789' };

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function aJob() {
  const service = await insertService(db.db, { id: uuidv7(), name: `svc-${uuidv7()}`, signingSecret: 'x' });
  const spec = buildJobSpec(
    { name: 'every-second', schedule: { every: '1s' }, target: { url: 'http://127.0.0.1:9/' } },
    { now: Date.now() },
  );
  return insertJob(
    db.db,
    {
      ...spec,
      id: uuidv7(),
      serviceId: service.id,
      state: 'active',
      now: new Date(),
      nextRunAt: null,
    },
    KEYS,
  );
}

describe('runs', () => {
  it('records one row per occurrence, however many deliveries race for it', async () => {
    const job = await aJob();
    const scheduledFor = new Date('2026-01-01T00:00:00Z');
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        recordOccurrence(db.db, {
          id: uuidv7(),
          jobId: job.id,
          serviceId: job.service_id,
          jobVersion: 1,
          scheduledFor,
          trigger: 'schedule',
          status: 'running',
        }),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.run.id)).size).toBe(1);
    const page = await listRunsOfJob(db.db, job.id, { limit: 100 });
    expect(page.items).toHaveLength(1);
    const counted = await db.db
      .selectFrom('jobs')
      .select('run_count')
      .where('id', '=', job.id)
      .executeTakeFirstOrThrow();
    expect(counted.run_count).toBe(1);
  });

  it('starts attempts only while the run is open', async () => {
    const job = await aJob();
    const { run } = await recordOccurrence(db.db, {
      id: uuidv7(),
      jobId: job.id,
      serviceId: job.service_id,
      jobVersion: 1,
      scheduledFor: new Date(),
      trigger: 'schedule',
      status: 'running',
    });
    expect((await startAttempt(db.db, run.id, 'w1'))?.attempts).toBe(1);
    expect((await startAttempt(db.db, run.id, 'w2'))?.attempts).toBe(2);
    await db.db.updateTable('runs').set({ status: 'succeeded' }).where('id', '=', run.id).execute();
    expect(await startAttempt(db.db, run.id, 'w3')).toBeUndefined();
  });

  it('migrates idempotently, also when two migrators run at once', async () => {
    const again = await Promise.all([migrateToLatest(db.db), migrateToLatest(db.db)]);
    expect(again.flat()).toEqual([]);
  });

  it('pages runs newest first by cursor', async () => {
    const job = await aJob();
    for (let i = 0; i < 5; i++) {
      await recordOccurrence(db.db, {
        id: uuidv7(),
        jobId: job.id,
        serviceId: job.service_id,
        jobVersion: 1,
        scheduledFor: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
        trigger: 'schedule',
        status: 'running',
      });
    }
    const first = await listRunsOfJob(db.db, job.id, { limit: 3 });
    expect(first.items).toHaveLength(3);
    expect(first.nextCursor).not.toBeNull();
    const { decodeCursor } = await import('../src/queries/cursor.ts');
    const second = await listRunsOfJob(db.db, job.id, { limit: 3, afterId: decodeCursor(first.nextCursor!) });
    expect(second.items).toHaveLength(2);
    expect(second.nextCursor).toBeNull();
    const ids = [...first.items, ...second.items].map((r) => r.id);
    expect(ids).toEqual([...ids].sort().reverse());
  });
});

describe('abandonRun', () => {
  it('ends a run BullMQ gave up on as dead, and leaves an ended one alone', async () => {
    const job = await aJob();
    const base = { jobId: job.id, serviceId: job.service_id, jobVersion: 1, trigger: 'schedule' as const };
    const open = await recordOccurrence(db.db, {
      ...base,
      id: uuidv7(),
      scheduledFor: new Date('2026-02-01T00:00:00Z'),
      status: 'running',
    });
    const done = await recordOccurrence(db.db, {
      ...base,
      id: uuidv7(),
      scheduledFor: new Date('2026-02-01T00:00:01Z'),
      status: 'skipped',
    });
    expect(
      await abandonRun(
        db.db,
        { jobId: job.id, scheduledFor: new Date('2026-02-01T00:00:00Z'), trigger: 'schedule' },
        'stalled',
      ),
    ).toBe(true);
    expect(await abandonRun(db.db, { runId: done.run.id }, 'stalled')).toBe(false);
    expect(await findRunById(db.db, open.run.id)).toMatchObject({ status: 'dead', error: 'stalled' });
    expect(await findRunById(db.db, done.run.id)).toMatchObject({ status: 'skipped' });
  });
});
