/**
 * What an api instance keeps in process (principals of API keys, job rows) is told when it goes
 * stale by Postgres itself: triggers send `NOTIFY tickwork_cache` at the COMMIT of a change
 * (migration 0061), and each instance LISTENs on a connection of its own to the primary.
 *
 * - While that connection is not listening (starting, lost, reconnecting) the bus is not `live`
 *   and callers must not use what they cached: a notification may have been missed. Every
 *   (re)connection starts from an empty cache (`onReset`).
 * - `generation` grows with every invalidation: a reader notes it before its Postgres read and
 *   keeps the row only if it has not moved, so a change committed meanwhile is never cached
 *   over.
 * - `barrier()` makes a change hold on every instance before the caller answers: it sends a
 *   barrier notification after the change's commit, and waits until every listening instance
 *   (by the `application_name` of its connection in `pg_stat_activity`) has acknowledged it.
 *   Notifications arrive in commit order, so an instance that acknowledges has dropped what the
 *   change made stale. A barrier may carry invalidations of its own (`invalidate`): each
 *   instance applies them as it receives the barrier, so a row it read from a lagging replica
 *   between the commit's notification and the barrier is dropped too.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';

export const CACHE_CHANNEL = 'tickwork_cache';
const ACK_CHANNEL = 'tickwork_cache_ack';
const LISTENER_APP = 'tickwork-api-cache';

export interface CacheBusOptions {
  url: string;
  /** An invalidation: `a` (keys and services) or `j:<job id>`. */
  onInvalidate: (message: string) => void;
  /** The bus became live: everything cached before may be stale. */
  onReset: () => void;
  /** @defaultValue 2_000 */
  barrierTimeoutMs?: number;
  /** @defaultValue 500 */
  reconnectMs?: number;
}

export class CacheBus {
  readonly instanceId = randomUUID();
  #client: pg.Client | undefined;
  #live = false;
  #closed = false;
  #generation = 0;
  #reconnect: NodeJS.Timeout | undefined;
  readonly #acks = new Map<string, { waiting: Set<string>; done: () => void }>();
  readonly #options: CacheBusOptions;

  constructor(options: CacheBusOptions) {
    this.#options = options;
  }

  get live(): boolean {
    return this.#live;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Connects and listens; resolves once live, or after the first failed attempt (retries go on). */
  async start(): Promise<void> {
    await this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({
      connectionString: this.#options.url,
      // Named as a listener only once it listens: `barrier()` waits for the acks of those named.
      application_name: `${LISTENER_APP}-starting`,
      keepAlive: true,
      connectionTimeoutMillis: 2_000,
    });
    this.#client = client;
    const lost = () => {
      if (this.#client !== client) return;
      this.#drop();
      client.end().catch(() => {});
      this.#scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => this.#onNotification(client, message));
    try {
      await client.connect();
      await client.query(
        `LISTEN ${CACHE_CHANNEL}; LISTEN ${ACK_CHANNEL}; SET application_name = '${LISTENER_APP} ${this.instanceId}'`,
      );
      if (this.#client !== client) return;
      this.#generation++;
      this.#options.onReset();
      this.#live = true;
    } catch {
      lost();
    }
  }

  #drop(): void {
    this.#live = false;
    this.#generation++;
    this.#options.onReset();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnect) return;
    this.#reconnect = setTimeout(() => {
      this.#reconnect = undefined;
      void this.#connect();
    }, this.#options.reconnectMs ?? 500);
    this.#reconnect.unref();
  }

  #onNotification(client: pg.Client, message: pg.Notification): void {
    const payload = message.payload ?? '';
    if (message.channel === ACK_CHANNEL) {
      const [barrier, instance] = payload.split(' ');
      const pending = barrier === undefined ? undefined : this.#acks.get(barrier);
      if (pending && instance !== undefined) {
        pending.waiting.delete(instance);
        if (pending.waiting.size === 0) pending.done();
      }
      return;
    }
    if (payload.startsWith('b:')) {
      const [barrier, ...invalidations] = payload.slice(2).split(' ');
      for (const invalidation of invalidations) {
        this.#generation++;
        this.#options.onInvalidate(invalidation);
      }
      // Everything committed before the barrier has been handled: acknowledge it.
      client.query('SELECT pg_notify($1, $2)', [ACK_CHANNEL, `${barrier} ${this.instanceId}`]).catch(() => {});
      return;
    }
    this.#generation++;
    this.#options.onInvalidate(payload);
  }

  /**
   * Resolves once every listening api instance has handled every change committed before this
   * call, and the `invalidate` messages (`j:<job id>`, `a`) sent with it; rejects when one has
   * not within `timeoutMs` (by default `barrierTimeoutMs`), or the bus is not live.
   */
  async barrier(options: { invalidate?: readonly string[]; timeoutMs?: number } = {}): Promise<void> {
    const client = this.#client;
    if (!this.#live || !client) throw new Error('the cache bus is not listening');
    const barrier = randomUUID();
    const { rows } = await client.query<{ name: string }>(
      `SELECT application_name AS name FROM pg_stat_activity
        WHERE datname = current_database() AND application_name LIKE $1`,
      [`${LISTENER_APP} %`],
    );
    const waiting = new Set(rows.map((row) => row.name.slice(LISTENER_APP.length + 1)));
    waiting.add(this.instanceId);
    let timer: NodeJS.Timeout | undefined;
    const acknowledged = new Promise<void>((resolve, reject) => {
      this.#acks.set(barrier, { waiting, done: resolve });
      timer = setTimeout(
        () => reject(new Error(`api instances did not acknowledge: ${[...waiting].join(', ')}`)),
        options.timeoutMs ?? this.#options.barrierTimeoutMs ?? 2_000,
      );
    });
    try {
      const message = [`b:${barrier}`, ...(options.invalidate ?? [])].join(' ');
      await client.query('SELECT pg_notify($1, $2)', [CACHE_CHANNEL, message]);
      await acknowledged;
    } finally {
      clearTimeout(timer);
      this.#acks.delete(barrier);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnect);
    this.#live = false;
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}
