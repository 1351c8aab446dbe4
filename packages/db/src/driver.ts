/**
 * How kysely reaches pg: a `PostgresPool` of ours (the interface kysely's `PostgresDialect` takes)
 * over a pg `Pool`. kysely asks it for a connection and sends each statement through the client it
 * gets; ours takes connections through the circuit breaker (when there is one) and sends each
 * statement as a pg query config, named when it is marked for preparation (`prepared.ts`). Nothing
 * of pg's is replaced or reached into: only `pool.connect()`, `client.query(config)` and
 * `client.release()`, pg's documented API.
 */
import type { PostgresPool, PostgresPoolClient } from 'kysely';
import type pg from 'pg';
import type { CircuitBreaker } from './circuit-breaker.ts';
import { statementOf } from './prepared.ts';

export interface KyselyPoolOptions {
  /** Connections are taken through it, so they fail at once while it is open. */
  breaker?: CircuitBreaker | undefined;
  /** Send statements marked with `PREPARE` as named statements. */
  prepare: boolean;
  /**
   * The pool's own configuration. kysely reads `options` only to open a control connection for
   * cancelling a query, which it does here through a pool connection instead (no `Client` given).
   */
  config: pg.PoolConfig;
}

export function kyselyPool(pool: pg.Pool, options: KyselyPoolOptions): PostgresPool {
  // One adapter per pg client, so kysely (which keys its connections by client) keeps its own.
  const adapters = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const adapt = (client: pg.PoolClient): PostgresPoolClient => {
    let adapter = adapters.get(client);
    if (adapter === undefined) {
      const query = (sql: string, parameters: readonly unknown[]) =>
        client.query(statementOf(sql, parameters, options.prepare));
      adapter = {
        // Only the text overload: kysely passes a cursor only when the dialect is given a cursor class, and ours is
        // not.
        query: query as unknown as PostgresPoolClient['query'],
        release: (destroy) => client.release(destroy),
      };
      adapters.set(client, adapter);
    }
    return adapter;
  };
  const connect = () => pool.connect();
  return {
    options: options.config,
    connect: async () => adapt(await (options.breaker ? options.breaker.run(connect) : connect())),
    end: () => pool.end(),
  };
}
