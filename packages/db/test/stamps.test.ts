/**
 * A page's ids and row versions as Postgres sends them in one text (`listJobStamps`): read back,
 * they are exactly the page `listJobs` gives (ids, order, next cursor) with each row's `xmin`, and
 * the text changes when a row of the page is updated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';
import {
  decodeCursor,
  findJob,
  findJobUnlessStamp,
  insertJob,
  insertService,
  listJobs,
  listJobStamps,
  pageOfStamps,
} from '../src/index.ts';

const KEYS = { current: 'test-secret-key-0123456789-0123456789' };

let db: TestDatabase;
let serviceId: string;
beforeAll(async () => {
  db = await createTestDatabase();
  const service = await insertService(db.db, { id: uuidv7(), name: `svc-${uuidv7()}`, signingSecret: 'x' });
  serviceId = service.id;
  for (let i = 0; i < 5; i++) {
    const spec = buildJobSpec(
      { name: `job-${i}`, schedule: { every: '1m' }, target: { url: 'http://127.0.0.1:9/' } },
      { now: Date.now() },
    );
    await insertJob(
      db.db,
      { ...spec, id: uuidv7(), serviceId, state: 'active', now: new Date(), nextRunAt: null },
      KEYS,
    );
  }
});
afterAll(async () => {
  await db?.drop();
});

const xminOf = async (id: string) =>
  (await sql<{ stamp: string }>`select xmin::text as stamp from jobs where id = ${id}`.execute(db.db)).rows[0]!.stamp;

describe('listJobStamps', () => {
  it('gives every page of listJobs, with each row version and the same next cursor', async () => {
    let afterId: string | undefined;
    let pages = 0;
    do {
      const filter = { limit: 2, afterId };
      const rows = await listJobs(db.db, serviceId, filter);
      const stamps = pageOfStamps(await listJobStamps(db.db, serviceId, filter));
      expect(stamps.items.map((item) => item.id)).toEqual(rows.items.map((row) => row.id));
      expect(stamps.nextCursor).toBe(rows.nextCursor);
      for (const item of stamps.items) expect(item.stamp).toBe(await xminOf(item.id));
      afterId = rows.nextCursor === null ? undefined : decodeCursor(rows.nextCursor);
      pages++;
    } while (afterId !== undefined);
    expect(pages).toBe(3);
  });

  it('sends an empty text for an empty page, and another text once a row of the page changed', async () => {
    expect(await listJobStamps(db.db, uuidv7(), { limit: 2 })).toEqual({ text: '', limit: 2 });
    const before = await listJobStamps(db.db, serviceId, { limit: 2 });
    const [first] = pageOfStamps(before).items;
    await sql`update jobs set name = 'renamed' where id = ${first!.id}`.execute(db.db);
    const after = await listJobStamps(db.db, serviceId, { limit: 2 });
    expect(after.text).not.toBe(before.text);
    expect(pageOfStamps(after).items[0]!.stamp).toBe(await xminOf(first!.id));
  });
});

describe('findJobUnlessStamp', () => {
  it("gives the row and its version, only the version while it is the caller's, the row again once it changed", async () => {
    const { items } = await listJobs(db.db, serviceId, { limit: 1 });
    const id = items[0]!.id;
    const first = await findJobUnlessStamp(db.db, serviceId, id);
    expect(first?.stamp).toBe(await xminOf(id));
    // The same row findJob reads, every column.
    expect(first?.row).toEqual(await findJob(db.db, serviceId, id));
    expect(await findJobUnlessStamp(db.db, serviceId, id, first!.stamp)).toEqual({
      stamp: first!.stamp,
      row: undefined,
    });
    await sql`update jobs set description = 'changed' where id = ${id}`.execute(db.db);
    const changed = await findJobUnlessStamp(db.db, serviceId, id, first!.stamp);
    expect(changed?.stamp).not.toBe(first!.stamp);
    expect(changed?.stamp).toBe(await xminOf(id));
    expect(changed?.row?.description).toBe('changed');
    expect(changed?.row).toEqual(await findJob(db.db, serviceId, id));
  });

  it("gives nothing for another service's job or a deleted one, whatever the version given", async () => {
    const { items } = await listJobs(db.db, serviceId, { limit: 1, afterId: undefined });
    const id = items[0]!.id;
    const stamp = await xminOf(id);
    expect(await findJobUnlessStamp(db.db, uuidv7(), id)).toBeUndefined();
    expect(await findJobUnlessStamp(db.db, uuidv7(), id, stamp)).toBeUndefined();
    expect(await findJobUnlessStamp(db.db, serviceId, uuidv7(), stamp)).toBeUndefined();
  });
});
