/**
 * Test isolation: each test file gets a database of its own (migrated) and a BullMQ prefix of
 * its own, both removed afterwards. URLs come from DATABASE_URL / REDIS_URL, which the root
 * vitest global set-up fills in (the local services, or testcontainers when a Docker engine runs).
 *
 * The global set-up also migrates one template database per `vitest run` (its name in
 * TICKWORK_TEST_TEMPLATE_DATABASE): each file's database is then a copy of it (`CREATE DATABASE …
 * TEMPLATE`, about 0.15 s) instead of a new database migrated from scratch (about 0.35 s). Without
 * the variable (a script, a benchmark), a file's database is created and migrated as before.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDatabase, dropDatabase, ensureDatabase, migrateToLatest, type DatabaseHandle } from '@tickwork/db';

export interface TestDatabase extends DatabaseHandle {
  url: string;
  /** Drops the database. */
  drop(): Promise<void>;
}

/** Names the migrated template database each test file's database is copied from. */
export const TEMPLATE_DATABASE_ENV = 'TICKWORK_TEST_TEMPLATE_DATABASE';

export function testBaseUrls(): { databaseUrl: string; redisUrl: string } {
  return {
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

function urlOf(name: string): string {
  const url = new URL(testBaseUrls().databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** `CREATE DATABASE name TEMPLATE template`, on the server of the base URL. */
async function copyDatabase(name: string, template: string): Promise<void> {
  for (const n of [name, template]) {
    if (!/^[A-Za-z0-9_-]+$/.test(n)) throw new Error(`refusing a database name "${n}"`);
  }
  const client = new pg.Client({ connectionString: urlOf('postgres') });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(label = 'tw_test'): Promise<TestDatabase> {
  const name = uniqueName(label);
  const url = urlOf(name);
  const template = process.env[TEMPLATE_DATABASE_ENV];
  if (template) await copyDatabase(name, template);
  else await ensureDatabase(url);
  const handle = createDatabase({ url, poolMax: 5 });
  // On a copy of the template, a check that finds nothing to do.
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

/**
 * A migrated database for test files' databases to be copied from (the vitest global set-up's,
 * one per run). Nothing may stay connected to it: a copy is refused while a session is.
 */
export async function createTemplateDatabase(): Promise<{ name: string; drop(): Promise<void> }> {
  const name = uniqueName('tw_template');
  const url = urlOf(name);
  await ensureDatabase(url);
  const handle = createDatabase({ url, poolMax: 1 });
  try {
    await migrateToLatest(handle.db);
  } catch (error) {
    await handle.close();
    await dropDatabase(url);
    throw error;
  }
  await handle.close();
  return { name, drop: () => dropDatabase(url) };
}

/** A BullMQ prefix no other test uses, hash-tagged like the real one. */
export function testPrefix(): string {
  return `{${uniqueName('twtest')}}`;
}
