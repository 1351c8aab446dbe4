/**
 * Test isolation: each test file gets a database of its own (migrated) and a BullMQ prefix of
 * its own, both removed afterwards. URLs come from DATABASE_URL / REDIS_URL, which the root
 * vitest global set-up fills in (the local services, or testcontainers when a Docker engine runs).
 */
import { randomBytes } from 'node:crypto';
import { createDatabase, dropDatabase, ensureDatabase, migrateToLatest, type DatabaseHandle } from '@tickwork/db';

export interface TestDatabase extends DatabaseHandle {
  url: string;
  /** Drops the database. */
  drop(): Promise<void>;
}

export function testBaseUrls(): { databaseUrl: string; redisUrl: string } {
  return {
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

export async function createTestDatabase(label = 'tw_test'): Promise<TestDatabase> {
  const base = new URL(testBaseUrls().databaseUrl);
  base.pathname = `/${uniqueName(label)}`;
  const url = base.toString();
  await ensureDatabase(url);
  const handle = createDatabase({ url, poolMax: 5 });
  await migrateToLatest(handle.db);
  return {
    ...handle,
    url,
    async drop() {
      await handle.close();
      await dropDatabase(url);
    },
  };
}

/** A BullMQ prefix no other test uses, hash-tagged like the real one. */
export function testPrefix(): string {
  return `{${uniqueName('twtest')}}`;
}
