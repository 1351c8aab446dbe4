/**
 * The count of a service's jobs: `services.job_count` of migration 0003, then the shards of
 * migration 0060 (`service_job_count`). Backfilled from the rows, kept by deferred triggers on
 * every insert and delete, and the `maxJobs` quota checked at COMMIT, exactly, also when many
 * connections create at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import { uuidv7 } from '@tickwork/core';
import { createDatabase, dropDatabase, ensureDatabase, type DatabaseHandle } from '../src/database.ts';
import * as m0001 from '../src/migrations/0001_init.ts';
import * as m0002 from '../src/migrations/0002_scheduling.ts';
import * as m0003 from '../src/migrations/0003_job_count.ts';
import * as m0004 from '../src/migrations/0004_target_body_text.ts';
import * as m0060 from '../src/migrations/0060_job_count_shards.ts';
import { testBaseUrls, uniqueName } from '@tickwork/testkit';

let handle: DatabaseHandle;
let url: string;
let db: Kysely<any>;
beforeAll(async () => {
  const base = new URL(testBaseUrls().databaseUrl);
  base.pathname = `/${uniqueName('tw_jobcount')}`;
  url = base.toString();
  await ensureDatabase(url);
  handle = createDatabase({ url, poolMax: 20 });
  db = handle.db;
});
afterAll(async () => {
  await handle?.close();
  if (url) await dropDatabase(url);
});

async function service(maxJobs = 10_000): Promise<string> {
  const id = uuidv7();
  await sql`INSERT INTO services (id, name, signing_secret, max_jobs) VALUES (${id}, ${id}, 'x', ${maxJobs})`.execute(
    db,
  );
  return id;
}
async function jobs(serviceId: string, count: number): Promise<void> {
  await sql`
    INSERT INTO jobs (id, service_id, name, schedule, target, misfire, retry, state, created_at, updated_at)
    SELECT gen_random_uuid(), ${serviceId}, 'job-' || gen_random_uuid(), '{}', '{}', '{}', '{}', 'active', now(), now()
    FROM generate_series(1, ${count}::integer)`.execute(db);
}
async function countOf(serviceId: string): Promise<{ counted: number; rows: number }> {
  const { rows } = await sql<{ counted: number; rows: number }>`
    SELECT service_job_count(${serviceId}) AS counted,
      (SELECT count(*)::integer FROM jobs WHERE service_id = ${serviceId}) AS rows`.execute(db);
  return rows[0]!;
}

describe('the job count of a service', () => {
  it('is backfilled from the rows by the migrations', async () => {
    await m0001.up(db);
    await m0002.up(db);
    const [a, b, empty] = [await service(), await service(), await service()];
    await jobs(a, 3);
    await jobs(b, 7);
    await m0003.up(db);
    await jobs(a, 1);
    await m0004.up(db);
    await m0060.up(db);
    expect(await countOf(a)).toEqual({ counted: 4, rows: 4 });
    await sql`DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE service_id = ${a} LIMIT 1)`.execute(db);
    expect(await countOf(a)).toEqual({ counted: 3, rows: 3 });
    expect(await countOf(b)).toEqual({ counted: 7, rows: 7 });
    expect(await countOf(empty)).toEqual({ counted: 0, rows: 0 });
  });

  it('follows every insert and delete, and refuses the statement that would pass max_jobs', async () => {
    const id = await service(5);
    await jobs(id, 4);
    expect(await countOf(id)).toEqual({ counted: 4, rows: 4 });
    // One statement over the quota: the whole of it rolls back.
    await expect(jobs(id, 2)).rejects.toMatchObject({ code: '23514', constraint: 'jobs_within_max_jobs' });
    expect(await countOf(id)).toEqual({ counted: 4, rows: 4 });
    await jobs(id, 1);
    await expect(jobs(id, 1)).rejects.toMatchObject({ code: '23514' });
    await sql`DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE service_id = ${id} LIMIT 2)`.execute(db);
    expect(await countOf(id)).toEqual({ counted: 3, rows: 3 });
    // Inserted and deleted in one transaction: counted once each way.
    await db.transaction().execute(async (trx) => {
      await sql`INSERT INTO jobs (id, service_id, name, schedule, target, misfire, retry, state, created_at, updated_at)
        VALUES (gen_random_uuid(), ${id}, 'brief', '{}', '{}', '{}', '{}', 'active', now(), now())`.execute(trx);
      await sql`DELETE FROM jobs WHERE service_id = ${id} AND name = 'brief'`.execute(trx);
    });
    expect(await countOf(id)).toEqual({ counted: 3, rows: 3 });
  });

  it('lets racing inserts take exactly the slots left', async () => {
    const id = await service(10);
    await jobs(id, 6);
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => jobs(id, 1)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(4);
    expect(await countOf(id)).toEqual({ counted: 10, rows: 10 });
  });

  it('goes with its service: deleting a service cascades to its jobs without an error', async () => {
    const id = await service();
    await jobs(id, 2);
    await sql`DELETE FROM services WHERE id = ${id}`.execute(db);
    const { rows } = await sql<{ n: number }>`SELECT count(*)::integer AS n FROM jobs WHERE service_id = ${id}`.execute(
      db,
    );
    expect(rows[0]!.n).toBe(0);
  });
});

describe('the shards of the count (migration 0060)', () => {
  const shardsOf = async (serviceId: string) =>
    (
      await sql<{ rows: number }>`
        SELECT count(*)::integer AS rows FROM service_job_shards WHERE service_id = ${serviceId} AND n > 0`.execute(db)
    ).rows[0]!.rows;

  it('spreads creates far from the quota over the shards of their connections', async () => {
    const id = await service(10_000);
    // 20 connections, 10 inserts each at once.
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        for (let i = 0; i < 10; i++) await jobs(id, 1);
      }),
    );
    expect(await countOf(id)).toEqual({ counted: 200, rows: 200 });
    expect(await shardsOf(id)).toBeGreaterThan(1);
    const { rows } = await sql<{ caps: number }>`
      SELECT sum(cap)::integer AS caps FROM service_job_shards WHERE service_id = ${id}`.execute(db);
    expect(rows[0]!.caps).toBeLessThanOrEqual(10_000);
  });

  it('never lets 50 racing creates at the limit pass it, on 20 connections', async () => {
    const id = await service(30);
    await jobs(id, 5);
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => jobs(id, 1)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(25);
    for (const r of results)
      if (r.status === 'rejected')
        expect(r.reason).toMatchObject({ code: '23514', constraint: 'jobs_within_max_jobs' });
    expect(await countOf(id)).toEqual({ counted: 30, rows: 30 });
  });

  it('follows max_jobs: lowered below the count nothing more fits, raised the new slots are free', async () => {
    const id = await service(100);
    await Promise.all(Array.from({ length: 10 }, () => jobs(id, 3)));
    await sql`UPDATE services SET max_jobs = 20 WHERE id = ${id}`.execute(db);
    await expect(jobs(id, 1)).rejects.toMatchObject({ code: '23514' });
    await sql`DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE service_id = ${id} LIMIT 15)`.execute(db);
    // 15 left of 20.
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => jobs(id, 1)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    await sql`UPDATE services SET max_jobs = 22 WHERE id = ${id}`.execute(db);
    const more = await Promise.allSettled(Array.from({ length: 12 }, () => jobs(id, 1)));
    expect(more.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect(await countOf(id)).toEqual({ counted: 22, rows: 22 });
  });
});
