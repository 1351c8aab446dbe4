/**
 * How kysely's statements reach Postgres (`driver.ts`): marked statements as named prepared
 * statements (seen in the session's own `pg_prepared_statements`), every other one unnamed, the
 * `TICKWORK_PG_PREPARE=off` switch, and connections taken through the circuit breaker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import { createDatabase, type DatabaseHandle } from '../src/database.ts';
import { PREPARE } from '../src/prepared.ts';
import { CircuitOpenError } from '../src/circuit-breaker.ts';
import { createTestDatabase, startTcpProxy, type TestDatabase } from '@tickwork/testkit';
import type { Database } from '../src/types.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('tw_driver');
});
afterAll(async () => {
  await db?.drop();
});

/** Runs a marked and an unmarked statement twice on one connection; returns what that session has prepared. */
async function preparedBy(handle: Kysely<Database>) {
  return handle.connection().execute(async (connection) => {
    for (const value of [1, 2]) {
      const marked = await sql<{ n: number }>`${sql.raw(PREPARE)} select ${value}::int + 1 as n`.execute(connection);
      expect(marked.rows).toEqual([{ n: value + 1 }]);
      await sql`select ${value}::int as plain`.execute(connection);
    }
    const { rows } = await sql<{ name: string; statement: string }>`
      select name, statement from pg_prepared_statements order by name`.execute(connection);
    return rows;
  });
}

describe('the kysely driver', () => {
  it('sends a marked statement as one named statement per connection, and the rest unnamed', async () => {
    const rows = await preparedBy(db.db);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.name).toMatch(/^tw_[0-9a-f]{16}$/);
    expect(rows[0]!.statement).toContain(`${PREPARE} select $1::int + 1 as n`);
  });

  it('prepares nothing with TICKWORK_PG_PREPARE=off', async () => {
    const previous = process.env.TICKWORK_PG_PREPARE;
    process.env.TICKWORK_PG_PREPARE = 'off';
    let handle: DatabaseHandle | undefined;
    try {
      handle = createDatabase({ url: db.url, poolMax: 1 });
    } finally {
      if (previous === undefined) delete process.env.TICKWORK_PG_PREPARE;
      else process.env.TICKWORK_PG_PREPARE = previous;
    }
    try {
      expect(await preparedBy(handle.db)).toEqual([]);
    } finally {
      await handle.close();
    }
  });

  it('reports affected rows and commits transactions as kysely expects', async () => {
    await sql`create table driver_probe (id int primary key)`.execute(db.db);
    const inserted = await db.db
      .insertInto('driver_probe' as never)
      .values([{ id: 1 }, { id: 2 }] as never)
      .executeTakeFirst();
    expect(inserted.numInsertedOrUpdatedRows).toBe(2n);
    await expect(
      db.db.transaction().execute(async (trx) => {
        await sql`insert into driver_probe values (3)`.execute(trx);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from driver_probe`.execute(db.db);
    expect(rows).toEqual([{ n: 2 }]);
  });

  it('takes connections through the circuit breaker: once Postgres is away, the next query fails at once', async () => {
    const target = new URL(db.url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const handle = createDatabase({
      url: proxy.urlThrough(db.url),
      poolMax: 1,
      connectionTimeoutMs: 2_000,
      breaker: { openMs: 60_000 },
    });
    try {
      await sql`select 1`.execute(handle.db);
      await proxy.cut();
      // The pool drops its idle connection once the cut reaches it; the next one cannot be made.
      const deadline = Date.now() + 5_000;
      while (handle.pool.totalCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(handle.pool.totalCount).toBe(0);
      await expect(sql`select 1`.execute(handle.db)).rejects.not.toBeInstanceOf(CircuitOpenError);
      expect(handle.breaker?.state).toBe('open');
      // Not tried at all: the breaker answers instead of the pool.
      await expect(sql`select 1`.execute(handle.db)).rejects.toBeInstanceOf(CircuitOpenError);
      await proxy.restore();
      expect(handle.pool.totalCount).toBe(0);
    } finally {
      await handle.close().catch(() => {});
      await proxy.close();
    }
  });
});
