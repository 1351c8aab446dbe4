/**
 * `services.job_count` (migration 0003): backfilled from the rows, then kept by deferred triggers
 * on every insert and delete, and the `maxJobs` quota checked at COMMIT.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import { uuidv7 } from '@tickwork/core';
import { createDatabase, dropDatabase, ensureDatabase, type DatabaseHandle } from '../src/database.ts';
import * as m0001 from '../src/migrations/0001_init.ts';
import * as m0002 from '../src/migrations/0002_scheduling.ts';
import * as m0003 from '../src/migrations/0003_job_count.ts';
import { testBaseUrls, uniqueName } from '@tickwork/testkit';

let handle: DatabaseHandle;
let url: string;
let db: Kysely<any>;
beforeAll(async () => {
  const base = new URL(testBaseUrls().databaseUrl);
  base.pathname = `/${uniqueName('tw_jobcount')}`;
  url = base.toString();
  await ensureDatabase(url);
  handle = createDatabase({ url, poolMax: 5 });
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
    SELECT job_count AS counted, (SELECT count(*)::integer FROM jobs WHERE service_id = ${serviceId}) AS rows
    FROM services WHERE id = ${serviceId}`.execute(db);
  return rows[0]!;
}

describe('services.job_count', () => {
  it('is backfilled from the rows by the migration', async () => {
    await m0001.up(db);
    await m0002.up(db);
    const [a, b, empty] = [await service(), await service(), await service()];
    await jobs(a, 3);
    await jobs(b, 7);
    await m0003.up(db);
    expect(await countOf(a)).toEqual({ counted: 3, rows: 3 });
    expect(await countOf(b)).toEqual({ counted: 7, rows: 7 });
    expect(await countOf(empty)).toEqual({ counted: 0, rows: 0 });
  });

  it('follows every insert and delete, and refuses at COMMIT the job past max_jobs', async () => {
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
