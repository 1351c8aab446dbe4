/**
 * The guarantees of migration 0030, held by Postgres itself whatever the api checked before: a
 * job lists only calendars of its own service, and a calendar a job lists cannot be deleted —
 * also when the job's write and the calendar's delete race (each waits on the other's row lock,
 * then sees what the other committed). Two real connections, each in its own transaction.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { uuidv7 } from '@tickwork/core';
import { testBaseUrls, uniqueName } from '@tickwork/testkit';
import { createDatabase, dropDatabase, ensureDatabase, type DatabaseHandle } from '../src/database.ts';
import { migrateToLatest } from '../src/migrate.ts';
import { isCalendarInUse, isMissingCalendar } from '../src/queries/calendars.ts';
import type { Database } from '../src/types.ts';

let handle: DatabaseHandle;
let url: string;
let db: Kysely<Database>;
const clients: pg.Client[] = [];

beforeAll(async () => {
  const base = new URL(testBaseUrls().databaseUrl);
  base.pathname = `/${uniqueName('tw_calendars')}`;
  url = base.toString();
  await ensureDatabase(url);
  handle = createDatabase({ url, poolMax: 3 });
  db = handle.db;
  await migrateToLatest(db);
});
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.end()));
  await handle?.close();
  if (url) await dropDatabase(url);
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  clients.push(c);
  return c;
}

async function service(): Promise<string> {
  const id = uuidv7();
  await sql`INSERT INTO services (id, name, signing_secret) VALUES (${id}, ${id}, 'x')`.execute(db);
  return id;
}
async function calendar(serviceId: string): Promise<string> {
  const id = uuidv7();
  await sql`INSERT INTO calendars (id, service_id, name, timezone, created_at, updated_at)
    VALUES (${id}, ${serviceId}, ${id}, 'UTC', now(), now())`.execute(db);
  return id;
}
const insertJob = (serviceId: string, calendarIds: string[]) => ({
  text: `INSERT INTO jobs
      (id, service_id, name, schedule, target, misfire, retry, state, created_at, updated_at, calendar_ids)
    VALUES ($1::uuid, $2, $1::text, '{}', '{}', '{}', '{}', 'active', now(), now(), $3::uuid[])`,
  values: [uuidv7(), serviceId, calendarIds],
});

/** Resolves once the backend of `c` waits on a lock another holds (polled, with a deadline). */
async function blocked(c: pg.Client): Promise<void> {
  const pid = (c as unknown as { processID: number }).processID;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { rows } = await sql<{ n: number }>`SELECT cardinality(pg_blocking_pids(${pid}::integer)) AS n`.execute(db);
    if (rows[0]!.n > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the statement never waited on a lock');
}

describe('jobs.calendar_ids', () => {
  it("refuses another service's calendar and an unknown one, and takes its own", async () => {
    const [mine, theirs] = [await service(), await service()];
    const own = await calendar(mine);
    const foreign = await calendar(theirs);
    const c = await client();
    await c.query(insertJob(mine, [own]));
    for (const ids of [[foreign], [own, uuidv7()]]) {
      const error = await c.query(insertJob(mine, ids)).catch((e: unknown) => e);
      expect(isMissingCalendar(error), String(error)).toBe(true);
    }
    const update = await c
      .query(`UPDATE jobs SET calendar_ids = $1::uuid[] WHERE service_id = $2`, [[foreign], mine])
      .catch((e: unknown) => e);
    expect(isMissingCalendar(update)).toBe(true);
  });

  it('keeps a listed calendar, even when the delete waits on a job not yet committed', async () => {
    const s = await service();
    const cal = await calendar(s);
    const [writer, deleter] = [await client(), await client()];
    await writer.query('BEGIN');
    await writer.query(insertJob(s, [cal]));
    const deleting = deleter.query('DELETE FROM calendars WHERE id = $1', [cal]).catch((e: unknown) => e);
    await blocked(deleter);
    await writer.query('COMMIT');
    expect(isCalendarInUse(await deleting)).toBe(true);
    const { rows } = await sql`SELECT id FROM calendars WHERE id = ${cal}`.execute(db);
    expect(rows).toHaveLength(1);
  });

  it('refuses a job whose calendar is deleted while the job waits on it', async () => {
    const s = await service();
    const cal = await calendar(s);
    const [writer, deleter] = [await client(), await client()];
    await deleter.query('BEGIN');
    await deleter.query('DELETE FROM calendars WHERE id = $1', [cal]);
    const writing = writer.query(insertJob(s, [cal])).catch((e: unknown) => e);
    await blocked(writer);
    await deleter.query('COMMIT');
    expect(isMissingCalendar(await writing)).toBe(true);
  });

  it('lets a calendar go with its service, jobs that list it and all', async () => {
    const s = await service();
    const cal = await calendar(s);
    const c = await client();
    await c.query(insertJob(s, [cal]));
    await c.query('DELETE FROM services WHERE id = $1', [s]);
    const { rows } = await sql`SELECT id FROM calendars WHERE id = ${cal}`.execute(db);
    expect(rows).toHaveLength(0);
  });
});
