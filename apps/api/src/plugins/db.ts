/**
 * The api's Postgres: the primary for writes and the reads they decide on, and `readDb` for the
 * reads a client asks for (lists and gets). With `DATABASE_READ_URL`, `readDb` routes each
 * request's reads to the read replica or the primary (`@tickwork/db` read-routing.ts): to the
 * replica only once it has replayed every write an answered request made in the scopes the
 * request reads. The write marks live in Redis, so this holds across api instances:
 *
 * - a service's requests read the mark of their service (`svc:<id>`), and their writes raise it
 *   and `all`;
 * - admin requests read the marks `admin` and `all` (an admin page may show any service's data),
 *   and their writes raise `admin` and, for a route of one service (`/v1/admin/services/:id…`),
 *   that service's mark.
 */
import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { createDatabase, lsnKey, lsnOfKey, ReadRouter, type Database, type WatermarkStore } from '@tickwork/db';
import type { DatabaseHandle } from '@tickwork/db';
import { closeRedis, openRedis, type RedisClient, type RedisTarget } from '@tickwork/queue';

declare module 'fastify' {
  interface FastifyInstance {
    /** The primary: every write, and reads that must see them. */
    db: Kysely<Database>;
    /** Reads a client asks for: routed between the replica and the primary, or the primary alone. */
    readDb: Kysely<Database>;
    dbPool: DatabaseHandle['pool'];
    /** Present when DATABASE_READ_URL is set: the replica's status, lag and read counts. */
    readRouter: ReadRouter | undefined;
  }
}

export interface DbPluginOptions {
  url: string;
  readUrl?: string | undefined;
  poolMax: number;
  /** Where the write marks are shared (needed with `readUrl`): one Redis, or the Cluster. */
  redis?: RedisTarget;
  /** The marks live at `<prefix>:read-after:{rw}:<scope>`, beside the queue's keys. */
  prefix?: string;
  /** @defaultValue 10000 */
  readMaxLagMs?: number;
}

/**
 * Marks as fixed-width hex text, so Redis compares them as strings. One hash tag for all of them
 * (the prefix's own when it has one), so a request's marks are one MGET on a Redis Cluster too.
 */
export class RedisWatermarks implements WatermarkStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #ttlMs: number;

  constructor(redis: RedisClient, prefix: string, ttlMs: number) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#ttlMs = ttlMs;
  }

  #key(scope: string): string {
    return `${this.#prefix}:read-after:{rw}:${scope}`;
  }

  async get(scopes: readonly string[]): Promise<Array<bigint | undefined>> {
    const values = await this.#redis.mget(...scopes.map((s) => this.#key(s)));
    return values.map((v) => (v === null ? undefined : lsnOfKey(v)));
  }

  async raise(scopes: readonly string[], lsn: bigint): Promise<void> {
    await this.#redis.eval(
      `for _, key in ipairs(KEYS) do
         local current = redis.call('GET', key)
         if (not current) or current < ARGV[1] then
           redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
         else
           redis.call('PEXPIRE', key, ARGV[2])
         end
       end
       return 1`,
      scopes.length,
      ...scopes.map((s) => this.#key(s)),
      lsnKey(lsn),
      String(this.#ttlMs),
    );
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function isAdminRequest(request: FastifyRequest): boolean {
  return (request.routeOptions.url ?? request.url).startsWith('/v1/admin');
}

/** The marks a request's reads must see. */
function readScopes(request: FastifyRequest): string[] {
  if (isAdminRequest(request)) return ['admin', 'all'];
  const serviceId = request.principal?.serviceId;
  return serviceId ? [`svc:${serviceId}`] : [];
}

/** The marks a request that may have written raises. */
function writeScopes(request: FastifyRequest): string[] {
  if (isAdminRequest(request)) {
    const serviceId = (request.params as { id?: unknown } | undefined)?.id;
    return typeof serviceId === 'string' ? ['admin', `svc:${serviceId}`] : ['admin'];
  }
  const serviceId = request.principal?.serviceId;
  return serviceId ? [`svc:${serviceId}`, 'all'] : [];
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
    app.decorate('db', primary.db);
    app.decorate('dbPool', primary.pool);
    if (!options.readUrl) {
      app.decorate('readDb', primary.db);
      app.decorate('readRouter', undefined);
      app.addHook('onClose', async () => {
        await primary.close();
      });
      return;
    }
    if (!options.redis || options.prefix === undefined) throw new Error('db: a read replica needs redis and prefix');

    // A replica that hangs costs a read 1 s at most: then the primary answers it.
    const replica = createDatabase({
      url: options.readUrl,
      ...common,
      applicationName: 'tickwork-api-read',
      queryTimeoutMs: 1_000,
      breaker: { openMs: 1_000, name: 'the read replica' },
    });
    const redis = openRedis(options.redis, 'producer', 'tickwork-api:read-marks');
    const maxLagMs = options.readMaxLagMs ?? 10_000;
    const router = new ReadRouter({
      primary,
      replica,
      marks: new RedisWatermarks(redis, options.prefix, Math.max(60_000, 6 * maxLagMs)),
      maxLagMs,
      log: app.log,
    });
    app.decorate('readDb', router.readDb);
    app.decorate('readRouter', router);

    // The handler and everything it calls run inside the request's read context.
    app.addHook('preHandler', (request, _reply, done) => {
      router.run({ reads: readScopes(request) }, done);
    });
    // Before the answer leaves: a client that has it may read through any instance next. A 4xx
    // changed nothing; a 5xx may have come after a commit.
    app.addHook('onSend', async (request, reply) => {
      if (SAFE_METHODS.has(request.method) || (reply.statusCode >= 400 && reply.statusCode < 500)) return;
      const scopes = writeScopes(request);
      if (scopes.length === 0) return;
      try {
        await router.markWritten(scopes);
      } catch (error) {
        request.log.warn({ err: error }, 'could not record the write mark; a replica read may lag behind it');
      }
    });
    app.addHook('onReady', async () => {
      await router.start();
    });
    app.addHook('onClose', async () => {
      await router.close();
      await closeRedis(redis);
      await replica.close();
      await primary.close();
    });
  },
  { name: 'db' },
);
