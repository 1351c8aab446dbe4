import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './types.ts';
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker.ts';
import { kyselyPool } from './driver.ts';
import { isDuplicateDatabase } from './errors.ts';

// timestamptz arrives as Date (pg's default); bigint counts as numbers, which fit here.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export interface DatabaseOptions {
  url: string;
  poolMax?: number;
  /** Fail a query that waits this long for a free connection, instead of queueing forever. */
  connectionTimeoutMs?: number;
  /** Postgres' own statement_timeout for every connection of the pool. */
  statementTimeoutMs?: number;
  /**
   * A client-side limit on each query (pg's `query_timeout`): unlike `statement_timeout` it holds
   * when the server answers nothing at all (a hung host). The read replica's pool sets it.
   */
  queryTimeoutMs?: number;
  applicationName?: string;
  /** Fail fast while Postgres does not answer, instead of waiting on the pool each time. */
  breaker?: CircuitBreakerOptions;
}

export interface DatabaseHandle {
  db: Kysely<Database>;
  pool: pg.Pool;
  breaker: CircuitBreaker | undefined;
  close(): Promise<void>;
}

export function createDatabase(options: DatabaseOptions): DatabaseHandle {
  const config: pg.PoolConfig = {
    connectionString: options.url,
    max: options.poolMax ?? 20,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'tickwork',
    ...(options.statementTimeoutMs === undefined ? {} : { statement_timeout: options.statementTimeoutMs }),
    ...(options.queryTimeoutMs === undefined ? {} : { query_timeout: options.queryTimeoutMs }),
  };
  const pool = new pg.Pool(config);
  // An idle client that loses its server emits 'error' on the pool; without a listener that
  // would crash the process. The next query gets a fresh connection.
  pool.on('error', () => {});
  // A client checked out of the pool has no error listener of the pool's: when its server goes
  // away mid-query, the 'error' it emits would crash the process (found by the outage test).
  // The query itself still rejects, and the pool discards the broken client on release.
  pool.on('connect', (client) => client.on('error', () => {}));
  const breaker = options.breaker ? new CircuitBreaker(options.breaker) : undefined;
  const prepare = process.env.TICKWORK_PG_PREPARE !== 'off';
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: kyselyPool(pool, { breaker, prepare, config }) }),
  });
  let closed = false;
  return {
    db,
    pool,
    breaker,
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

/** Creates the database named in the URL when it does not exist (local set-up and tests). */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`refusing to create database with name "${name}"`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE "${name}"`);
    } catch (error) {
      if (!isDuplicateDatabase(error)) throw error;
      return false;
    }
    return true;
  } finally {
    await client.end();
  }
}

export async function dropDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
