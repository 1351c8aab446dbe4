/**
 * Read routing between the primary and a streaming read replica (`DATABASE_READ_URL`), with
 * read-your-writes across every api instance.
 *
 * ## The mechanism: write marks by tenant, and the replica's replay position
 *
 * After a request that may have written commits, the api records the primary's WAL insert
 * position (`pg_current_wal_insert_lsn()`, taken after the commit, so at or past its commit
 * record) as a **write mark** under the request's scopes (the service, or the admin scope) in a
 * {@link WatermarkStore} that every api instance shares (Redis). Each instance polls the replica's
 * `pg_last_wal_replay_lsn()` every {@link ReadRouterOptions.checkEveryMs}. A request's reads go to
 * the replica only when the replica is healthy, close enough (lag ≤ `maxLagMs`) and has replayed
 * past every mark of the scopes the request reads; otherwise to the primary. Replay positions only
 * grow, so a poll that is a little old only sends a read to the primary that could have gone to
 * the replica, never the other way round. The client carries nothing: a read through any instance
 * sees what any earlier answered write did.
 *
 * The decision is made once per request (its reads are on one server, so they agree with each
 * other), from the request's {@link ReadContext} held in an AsyncLocalStorage: `readDb` stays a
 * plain Kysely instance. A read outside any request context goes to the primary.
 *
 * ## When the replica fails
 *
 * A failed poll (no answer within `checkTimeoutMs`), a failed connection or a failed query on the
 * replica marks it degraded at once: later reads go to the primary, and a read whose query failed
 * on the replica is sent again to the primary (reads only: `readDb` is never used for writes or
 * transactions). Queries on the replica carry a client-side timeout (the handle's
 * `queryTimeoutMs`), so a replica that hangs costs a read that long at most. The first poll that
 * succeeds again brings the replica back.
 *
 * ## Lag
 *
 * The lag in seconds is how old the newest primary state the replica holds is: the router keeps
 * the primary's WAL position of each poll (when it moved) and the lag is the time since the first
 * poll whose position the replica has not replayed. It is 0 when the replica has everything, also
 * while nothing is written (unlike `now() - pg_last_xact_replay_timestamp()`), and it grows while
 * the replica is cut off from the primary (unlike a lag computed on the replica alone).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Kysely, PostgresDialect, sql, type PostgresPool, type PostgresPoolClient } from 'kysely';
import type pg from 'pg';
import { withTimeout } from '@tickwork/core';
import type { DatabaseHandle } from './database.ts';
import { statementOf } from './prepared.ts';
import type { Database } from './types.ts';

/** Where a request's reads go. */
export type ReadTarget = 'replica' | 'primary';

/** What a request reads: the scopes whose write marks its reads must see. */
export interface ReadContext {
  readonly reads: readonly string[];
  /** Decided at the request's first read. */
  target?: Promise<ReadTarget>;
}

/** Write marks shared by every api instance: the highest WAL position written under each scope. */
export interface WatermarkStore {
  /** The marks of `scopes`, in their order (undefined: no recent write). */
  get(scopes: readonly string[]): Promise<Array<bigint | undefined>>;
  /** Raises each scope's mark to `lsn` (never lowers it). */
  raise(scopes: readonly string[], lsn: bigint): Promise<void>;
}

export interface ReplicaStatus {
  /** `ok`: reads may go to the replica; `degraded`: every read goes to the primary. */
  state: 'ok' | 'degraded';
  /** Why it is degraded. */
  reason?: string;
  /** How old the newest primary state the replica holds is, in seconds (null: unknown). */
  lagSeconds: number | null;
  /** WAL bytes the replica has not replayed (null: unknown). */
  lagBytes: number | null;
  /** The replica's replay position at the last poll. */
  replayLsn: bigint | null;
}

export interface ReadRouterOptions {
  primary: DatabaseHandle;
  replica: DatabaseHandle;
  marks: WatermarkStore;
  /** A replica further behind than this serves no reads. @defaultValue 10000 */
  maxLagMs?: number;
  /** @defaultValue 250 */
  checkEveryMs?: number;
  /** A poll that takes longer counts as failed. @defaultValue 500 */
  checkTimeoutMs?: number;
  /** Send statements marked for preparation as named statements (as `createDatabase`). @defaultValue true */
  prepare?: boolean;
  log?: { warn(object: object, message: string): void };
  now?: () => number;
}

/** `16/B374D848` → 0x16B374D848. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!match) throw new Error(`not an LSN: "${text}"`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** A fixed-width text form whose string order is the LSN order (for stores that compare strings). */
export function lsnKey(lsn: bigint): string {
  return lsn.toString(16).toUpperCase().padStart(16, '0');
}

export function lsnOfKey(key: string): bigint {
  return BigInt(`0x${key}`);
}

/** Errors that say the server or the connection failed, not the statement. */
export function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code.startsWith('08') || code.startsWith('57P');
  return true;
}

interface Sample {
  at: number;
  lsn: bigint;
}

export class ReadRouter {
  readonly readDb: Kysely<Database>;
  /** Reads by where they went, since start (a counter for metrics). */
  readonly reads: Record<ReadTarget, number> = { replica: 0, primary: 0 };
  /** Reads whose query failed on the replica and was answered by the primary. */
  fallbacks = 0;

  readonly #options: Required<Omit<ReadRouterOptions, 'log'>> & Pick<ReadRouterOptions, 'log'>;
  readonly #context = new AsyncLocalStorage<ReadContext>();
  readonly #broken = new WeakSet<pg.PoolClient>();
  readonly #samples: Sample[] = [];
  #status: ReplicaStatus = {
    state: 'degraded',
    reason: 'not checked yet',
    lagSeconds: null,
    lagBytes: null,
    replayLsn: null,
  };
  /** A failure seen by a read since the last poll: degraded until a poll succeeds. */
  #failure: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  #closed = false;
  #warnedMarks = 0;

  constructor(options: ReadRouterOptions) {
    this.#options = {
      maxLagMs: 10_000,
      checkEveryMs: 250,
      checkTimeoutMs: 500,
      prepare: true,
      now: Date.now,
      ...options,
    };
    this.readDb = new Kysely<Database>({ dialect: new PostgresDialect({ pool: this.#routedPool() }) });
  }

  /** Polls the replica now and then every `checkEveryMs`, until {@link close}. */
  async start(): Promise<void> {
    await this.check();
    const loop = () => {
      if (this.#closed) return;
      this.#timer = setTimeout(() => {
        void this.check().finally(loop);
      }, this.#options.checkEveryMs);
      this.#timer.unref();
    };
    loop();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#checking?.catch(() => {});
    await this.readDb.destroy();
  }

  status(): ReplicaStatus {
    return this.#status;
  }

  /** Runs `fn` (a request's handling) with its reads routed by `context`. */
  run<T>(context: ReadContext, fn: () => T): T {
    return this.#context.run(context, fn);
  }

  /**
   * Records that what was committed so far must be visible to reads of `scopes`: call it after
   * the commits of a request that may have written, before answering it.
   */
  async markWritten(scopes: readonly string[]): Promise<void> {
    if (scopes.length === 0) return;
    const { rows } = await sql<{ lsn: string }>`select pg_current_wal_insert_lsn()::text as lsn`.execute(
      this.#options.primary.db,
    );
    await this.#options.marks.raise(scopes, parseLsn(rows[0]!.lsn));
  }

  /** One poll of both servers; {@link start} runs it on a timer. */
  check(): Promise<void> {
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #check(): Promise<void> {
    const { primary, replica, checkTimeoutMs, maxLagMs, now } = this.#options;
    const [onPrimary, onReplica] = await Promise.allSettled([
      withTimeout(
        sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(primary.db),
        checkTimeoutMs,
        'the primary',
      ),
      withTimeout(
        sql<{ standby: boolean; lsn: string | null }>`
          select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn()::text as lsn`.execute(replica.db),
        checkTimeoutMs,
        'the replica',
      ),
    ]);
    const at = now();
    if (onPrimary.status === 'fulfilled') this.#sample(at, parseLsn(onPrimary.value.rows[0]!.lsn));
    const degraded = (reason: string): ReplicaStatus => ({
      ...this.#status,
      state: 'degraded',
      reason,
    });
    if (onReplica.status === 'rejected') {
      this.#status = degraded(`not answering: ${(onReplica.reason as Error).message.slice(0, 200)}`);
      return;
    }
    const row = onReplica.value.rows[0]!;
    if (!row.standby || row.lsn === null) {
      this.#status = {
        state: 'degraded',
        reason: 'not a streaming standby (no WAL replay position); reads go to the primary',
        lagSeconds: null,
        lagBytes: null,
        replayLsn: null,
      };
      return;
    }
    this.#failure = undefined;
    const replayLsn = parseLsn(row.lsn);
    const newest = this.#samples.at(-1);
    const lagSeconds = this.#lagSeconds(replayLsn, at);
    const lagBytes = newest === undefined ? null : Number(newest.lsn > replayLsn ? newest.lsn - replayLsn : 0n);
    const behind = lagSeconds * 1000 > maxLagMs;
    this.#status = {
      state: behind ? 'degraded' : 'ok',
      ...(behind ? { reason: `${lagSeconds.toFixed(1)} s behind the primary (more than ${maxLagMs} ms)` } : {}),
      lagSeconds,
      lagBytes,
      replayLsn,
    };
  }

  #sample(at: number, lsn: bigint): void {
    const last = this.#samples.at(-1);
    if (last === undefined || lsn > last.lsn) this.#samples.push({ at, lsn });
    const keepFrom = at - Math.max(60_000, 3 * this.#options.maxLagMs);
    while (this.#samples.length > 1 && this.#samples[1]!.at < keepFrom) this.#samples.shift();
  }

  #lagSeconds(replayLsn: bigint, at: number): number {
    const missing = this.#samples.find((sample) => sample.lsn > replayLsn);
    return missing === undefined ? 0 : Math.max(0, at - missing.at) / 1000;
  }

  #usable(): boolean {
    return this.#status.state === 'ok' && this.#failure === undefined;
  }

  #replicaFailed(error: unknown): void {
    const reason = `failed a read: ${(error as Error).message.slice(0, 200)}`;
    if (this.#failure === undefined)
      this.#options.log?.warn({ err: error }, 'read replica failed; reading from the primary');
    this.#failure = reason;
    this.#status = { ...this.#status, state: 'degraded', reason };
  }

  async #decide(context: ReadContext): Promise<ReadTarget> {
    if (!this.#usable()) return 'primary';
    if (context.reads.length === 0) return 'replica';
    let marks: Array<bigint | undefined>;
    try {
      marks = await withTimeout(this.#options.marks.get(context.reads), this.#options.checkTimeoutMs, 'write marks');
    } catch (error) {
      // Without the marks a replica read could miss a write: the primary answers instead.
      if (this.#warnedMarks++ % 1000 === 0) {
        this.#options.log?.warn({ err: error }, 'could not read the write marks; reading from the primary');
      }
      return 'primary';
    }
    const replayed = this.#status.replayLsn;
    if (replayed === null) return 'primary';
    return marks.every((mark) => mark === undefined || mark <= replayed) ? 'replica' : 'primary';
  }

  #connect(handle: DatabaseHandle): Promise<pg.PoolClient> {
    const connect = () => handle.pool.connect();
    return handle.breaker ? handle.breaker.run(connect) : connect();
  }

  #routedPool(): PostgresPool {
    const { primary, replica, prepare } = this.#options;
    const adapters = new WeakMap<pg.PoolClient, PostgresPoolClient>();
    const onPrimary = (client: pg.PoolClient): PostgresPoolClient => {
      let adapter = adapters.get(client);
      if (adapter === undefined) {
        adapter = {
          query: ((text: string, values: readonly unknown[]) =>
            client.query(statementOf(text, values, prepare))) as unknown as PostgresPoolClient['query'],
          release: (destroy) => client.release(destroy),
        };
        adapters.set(client, adapter);
      }
      return adapter;
    };
    const onReplica = (client: pg.PoolClient): PostgresPoolClient => {
      let adapter = adapters.get(client);
      if (adapter === undefined) {
        const query = async (text: string, values: readonly unknown[]) => {
          const statement = statementOf(text, values, prepare);
          try {
            return await client.query(statement);
          } catch (error) {
            // A read is safe to send again: the primary answers it, and the request's later
            // reads go there too. A statement that is itself wrong fails there the same way.
            if (isConnectionFailure(error)) {
              this.#broken.add(client);
              this.#replicaFailed(error);
            }
            const context = this.#context.getStore();
            if (context) context.target = Promise.resolve('primary');
            this.fallbacks++;
            const fallback = await this.#connect(primary);
            try {
              return await fallback.query(statement);
            } finally {
              fallback.release();
            }
          }
        };
        adapter = {
          query: query as unknown as PostgresPoolClient['query'],
          release: (destroy) => client.release(destroy || this.#broken.has(client)),
        };
        adapters.set(client, adapter);
      }
      return adapter;
    };
    return {
      // kysely reads it only to cancel a query through a control connection, which it opens
      // through connect() when no Client class is given.
      options: primary.pool.options,
      connect: async () => {
        const context = this.#context.getStore();
        let target: ReadTarget = 'primary';
        if (context) {
          context.target ??= this.#decide(context);
          target = await context.target;
        }
        if (target === 'replica' && this.#usable()) {
          try {
            const client = await this.#connect(replica);
            this.reads.replica++;
            return onReplica(client);
          } catch (error) {
            this.#replicaFailed(error);
            if (context) context.target = Promise.resolve('primary');
          }
        }
        this.reads.primary++;
        return onPrimary(await this.#connect(primary));
      },
      // The pools belong to their handles, which end them.
      end: async () => {},
    };
  }
}
