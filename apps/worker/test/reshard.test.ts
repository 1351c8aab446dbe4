/**
 * The reconciler moving jobs when FIRE_QUEUE_SHARDS changes, against a real Postgres and Redis:
 * every scheduler and pending one-shot lands on its new shard, keeps its phase (also when the
 * pass began a while before it writes), the old queue is forgotten once empty, and a worker of
 * another shard count leaves everything alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildJobSpec, nextRunOf, uuidv7, type CreateJobBody } from '@tickwork/core';
import { insertJob, insertService, jobFromRow, type JobRow } from '@tickwork/db';
import { FireQueue, onceJobIdOf, schedulerIdOf, schedulerNextsOf } from '@tickwork/queue';
import { createTestDatabase, deletePrefix, testBaseUrls, testPrefix, type TestDatabase } from '@tickwork/testkit';
import { reconcile } from '../src/reconcile.ts';

let db: TestDatabase;
let serviceId: string;
const prefix = testPrefix();
const { redisUrl } = testBaseUrls();
const handles: FireQueue[] = [];
const handle = (shards: number) => {
  const fireQueue = new FireQueue({ redisUrl, prefix, shards });
  handles.push(fireQueue);
  return fireQueue;
};

beforeAll(async () => {
  db = await createTestDatabase('tw_reshard');
  serviceId = (await insertService(db.db, { id: uuidv7(), name: 'reshard', signingSecret: 'x' })).id;
});

afterAll(async () => {
  await Promise.all(handles.map((fireQueue) => fireQueue.close()));
  await deletePrefix(redisUrl, prefix);
  await db?.drop();
});

async function aJob(fireQueue: FireQueue, schedule: CreateJobBody['schedule'], now: number): Promise<JobRow> {
  const spec = buildJobSpec({ name: `job-${uuidv7()}`, schedule, target: { url: 'http://127.0.0.1:9/' } }, { now });
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
  await fireQueue.register(jobFromRow(row), now);
  return row;
}

describe('reconcile after FIRE_QUEUE_SHARDS changed', () => {
  it('moves every job to its shard, keeps each phase, then forgets the old queue', async () => {
    const one = handle(1);
    await one.ping();
    await one.announce({ current: true });
    // Phases off the second, so a scheduler started at "now" instead of its startDate shows.
    const created = Date.now() - 10_000 + 337;
    const every = await Promise.all(Array.from({ length: 8 }, (_, i) => aJob(one, { every: '7s' }, created + i)));
    const oneShot = await aJob(one, { at: new Date(Date.now() + 3_600_000).toISOString() }, created);
    expect(await one.queue.getJobSchedulersCount()).toBe(8);

    const three = handle(3);
    await three.ping();
    // A worker of the old count does nothing while the new count is current.
    await three.announce({ current: true });
    const stale = await reconcile({ db: db.db, fireQueue: one, retireAfterMs: 0 });
    expect(stale.skipped).toMatch(/another shard count/);
    expect(await one.queue.getJobSchedulersCount()).toBe(8);

    // The pass began more than an interval before it writes: the phases must hold all the same.
    const report = await reconcile({ db: db.db, fireQueue: three, now: Date.now() - 7_500, retireAfterMs: 0 });
    expect(report.repairs.moved).toBe(9);
    expect(report.repairs.missing).toBe(9);
    expect(await one.queue.getJobSchedulersCount()).toBe(0);
    for (const row of every) {
      const shard = three.shardOf(row.id);
      const [next] = await schedulerNextsOf(shard, [schedulerIdOf(row.id, 1)]);
      expect(next).toBeGreaterThan(Date.now() - 1_000);
      expect((next! - row.created_at.getTime()) % 7_000).toBe(0);
    }
    expect(await one.queue.getJob(onceJobIdOf(oneShot.id, 1))).toBeUndefined();
    expect(await three.shardOf(oneShot.id).queue.getJob(onceJobIdOf(oneShot.id, 1))).toBeDefined();

    // Nothing left to move; the emptied old queue is forgotten.
    const again = await reconcile({ db: db.db, fireQueue: three, retireAfterMs: 0 });
    expect(again.repairs).toMatchObject({ moved: 0, missing: 0, catchup: 0 });
    expect((await three.knownShards({ fresh: true })).map((shard) => shard.name)).toEqual(
      three.shards.map((shard) => shard.name),
    );
  }, 30_000);
});
