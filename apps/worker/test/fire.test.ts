/**
 * Edges of one occurrence that the end-to-end suites cannot pin down deterministically: a run
 * the api recorded for a service disabled since, and an occurrence that arrives before the
 * create that registered it has committed. Real Postgres and BullMQ jobs; no Worker runs, the
 * test hands the BullMQ job to fireOccurrence itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { buildJobSpec, manualJobIdOf, uuidv7, type FireJobData } from '@tickwork/core';
import { findRunById, insertJob, insertRequestedRun, insertService } from '@tickwork/db';
import { createTestDatabase, testBaseUrls, testPrefix, type TestDatabase } from '@tickwork/db/testing';
import { createDispatchers } from '../src/deliver.ts';
import { RetryLaterError, fireOccurrence, type FireContext } from '../src/fire.ts';

let db: TestDatabase;
let queue: Queue<FireJobData>;
let ctx: FireContext;
const prefix = testPrefix();

beforeAll(async () => {
  db = await createTestDatabase('tw_fire');
  queue = new Queue<FireJobData>('fire', { connection: new Redis(testBaseUrls().redisUrl, { maxRetriesPerRequest: null }), prefix });
  const policy = { allowPrivate: true, allowedHosts: [] };
  ctx = {
    db: db.db,
    logger: pino({ level: 'silent' }),
    workerId: 'test',
    secretKey: 'test-secret-key-0123456789-0123456789',
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
  it("fails, not strands, a run now whose service was disabled before it was delivered", async () => {
    const service = await insertService(db.db, { id: uuidv7(), name: 'disabled', signingSecret: 'unused' });
    const spec = buildJobSpec({ name: 'j', schedule: { every: '1h' }, target: { url: 'http://127.0.0.1:9/' } }, { now: Date.now() });
    const job = await insertJob(db.db, { ...spec, id: uuidv7(), serviceId: service.id, state: 'active', now: new Date(), nextRunAt: null });
    const run = await insertRequestedRun(db.db, { id: uuidv7(), jobId: job.id, serviceId: service.id, jobVersion: 1, trigger: 'manual', now: Date.now() });
    await db.db.updateTable('services').set({ disabled_at: new Date() }).where('id', '=', service.id).execute();

    const bullJob = await queue.add('fire', { jobId: job.id, version: 1, runId: run.id }, { jobId: manualJobIdOf(job.id, run.id) });
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
    const old = await queue.add('fire', { jobId: other, version: 1 }, { jobId: `once:${other}:v1`, timestamp: Date.now() - 60_000 });
    expect(await fireOccurrence(ctx, old)).toEqual({ outcome: 'gone' });
  });
});
