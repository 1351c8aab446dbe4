import fp from 'fastify-plugin';
import type { Kysely } from 'kysely';
import { createDatabase, type Database } from '@tickwork/db';
import type { DatabaseHandle } from '@tickwork/db';

declare module 'fastify' {
  interface FastifyInstance {
    /** The primary: every write, and reads that must see them. */
    db: Kysely<Database>;
    /** A read replica when DATABASE_READ_URL is set, else the primary. */
    readDb: Kysely<Database>;
    dbPool: DatabaseHandle['pool'];
  }
}

export interface DbPluginOptions {
  url: string;
  readUrl?: string | undefined;
  poolMax: number;
}

export default fp<DbPluginOptions>(
  async (app, options) => {
    // Short waits: when Postgres is away a request fails fast (503) instead of queueing on the
    // pool; after one failed connection the breaker answers at once, probing once a second.
    const common = {
      poolMax: options.poolMax,
      connectionTimeoutMs: 1_000,
      statementTimeoutMs: 10_000,
      applicationName: 'tickwork-api',
      breaker: { openMs: 1_000 },
    };
    const primary = createDatabase({ url: options.url, ...common });
    const replica = options.readUrl ? createDatabase({ url: options.readUrl, ...common }) : undefined;
    app.decorate('db', primary.db);
    app.decorate('readDb', replica?.db ?? primary.db);
    app.decorate('dbPool', primary.pool);
    app.addHook('onClose', async () => {
      await replica?.close();
      await primary.close();
    });
  },
  { name: 'db' },
);
