/** Retention: old runs and expired idempotency keys go, in batches; recent and in-flight runs stay. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { uuidv7 } from '@tickwork/core';
import { insertService } from '@tickwork/db';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';
import { PRUNE_TASK, prunePass, pruneTask } from '../src/prune.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('tw_prune');
});
afterAll(async () => {
  await db?.drop();
});

const DAY = 86_400_000;

describe('prune', () => {
  it('deletes runs older than the retention in batches, keeping recent and in-flight ones; expired keys', async () => {
    const service = await insertService(db.db, { id: uuidv7(), name: 'prune', signingSecret: 'x' });
    const jobId = uuidv7();
    await db.db
      .insertInto('jobs')
      .values({
        id: jobId,
        service_id: service.id,
        name: 'j',
        schedule: '{}',
        target: '{}',
        misfire: '{}',
        retry: '{}',
        state: 'active',
        version: 1,
        jitter_ms: 0,
        overlap: 'allow',
        labels: '{}',
        created_at: new Date(),
        updated_at: new Date(),
      })
      .execute();
    const now = Date.now();
    const run = (ageDays: number, status: string, i: number) => ({
      id: uuidv7(),
      job_id: jobId,
      service_id: service.id,
      job_version: 1,
      scheduled_for: new Date(now - ageDays * DAY + i),
      trigger: 'schedule',
      status,
      created_at: new Date(now - ageDays * DAY),
    });
    const old = Array.from({ length: 7 }, (_, i) => run(8, 'succeeded', i));
    const oldInFlight = run(8, 'retrying', 100);
    const recent = Array.from({ length: 3 }, (_, i) => run(6, 'dead', 200 + i));
    await db.db
      .insertInto('runs')
      .values([...old, oldInFlight, ...recent])
      .execute();
    await db.db
      .insertInto('idempotency_keys')
      .values([
        { service_id: service.id, key: 'expired', fingerprint: 'f', expires_at: new Date(now - 1_000) },
        { service_id: service.id, key: 'live', fingerprint: 'f', expires_at: new Date(now + DAY) },
      ])
      .execute();

    // Alerts: one resolved 8 days ago goes; one resolved 6 days ago stays, and so does an open one however old.
    const alert = (ageDays: number, resolvedDaysAgo: number | null) => ({
      id: uuidv7(now - ageDays * DAY),
      service_id: service.id,
      job_id: jobId,
      scheduled_for: new Date(now - ageDays * DAY),
      reason: 'dead',
      opened_at: new Date(now - ageDays * DAY),
      resolved_at: resolvedDaysAgo === null ? null : new Date(now - resolvedDaysAgo * DAY),
    });
    const alerts = [alert(9, 8), alert(7, 6), alert(30, null)];
    // One open alert per job (a partial unique index): the open one is of a job of its own.
    const openJob = uuidv7();
    await db.db
      .insertInto('jobs')
      .values({
        id: openJob,
        service_id: service.id,
        name: 'open',
        schedule: '{}',
        target: '{}',
        misfire: '{}',
        retry: '{}',
        state: 'active',
        version: 1,
        jitter_ms: 0,
        overlap: 'allow',
        labels: '{}',
        created_at: new Date(),
        updated_at: new Date(),
      })
      .execute();
    alerts[2]!.job_id = openJob;
    await db.db.insertInto('alerts').values(alerts).execute();

    const result = await prunePass(
      { db: db.db, retentionDays: 7, batchSize: 2, now: () => now },
      pino({ level: 'silent' }),
    );
    expect(result).toMatchObject({ runs: 7, idempotencyKeys: 1, alerts: 1 });
    const alertsLeft = await db.db.selectFrom('alerts').select('id').execute();
    expect(new Set(alertsLeft.map((a) => a.id))).toEqual(new Set([alerts[1]!.id, alerts[2]!.id]));
    const left = await db.db.selectFrom('runs').select('id').execute();
    expect(new Set(left.map((r) => r.id))).toEqual(new Set([oldInFlight.id, ...recent.map((r) => r.id)]));
    const keys = await db.db.selectFrom('idempotency_keys').select('key').execute();
    expect(keys.map((k) => k.key)).toEqual(['live']);
    expect((await prunePass({ db: db.db, retentionDays: 7, now: () => now })).runs).toBe(0);
  });

  it('is a maintenance task of its own', () => {
    const task = pruneTask({ db: db.db, retentionDays: 7 });
    expect(task.name).toBe(PRUNE_TASK);
    expect(task.everyMs).toBeGreaterThan(0);
  });
});
