/**
 * Principals of API keys, kept in process so a request need not look its key up in Postgres.
 *
 * Revocation must still hold at once on every api instance (issue 4): every admin change that
 * can make a key unusable or change what a principal carries (revoke, disable, enable, quotas)
 * sets a new *auth epoch* in Redis after its Postgres commit and before it answers. Each request
 * reads the epoch (one Redis GET, far cheaper here than a Postgres query), and a cached principal
 * counts only if it was filled under that same epoch — its epoch read *before* its Postgres read,
 * so a change that commits in between makes the entry stale at once. The epoch is a fresh UUID,
 * never a counter: a Redis that lost its data cannot bring an old epoch back. A missing epoch (a
 * fresh or emptied Redis) is never trusted: it is set to a new one, and that request goes to
 * Postgres — else an entry filled before a revoke under "no epoch yet" would count again once a
 * FLUSHALL removed the revoke's epoch. When Redis cannot be read, every request goes to Postgres. Expiry is checked
 * against the key's `expires_at` here.
 * Entries also age out after `ttlMs`, and at most `maxEntries` are kept.
 */
import { randomUUID } from 'node:crypto';
import type { RedisClient } from '@tickwork/queue';
import type { Principal } from '@tickwork/db';

interface Entry {
  principal: Principal;
  epoch: string;
  filledAt: number;
}

export interface PrincipalCacheOptions {
  /** @defaultValue 60_000 */
  ttlMs?: number;
  /** @defaultValue 10_000 */
  maxEntries?: number;
}

export function authEpochKey(prefix: string): string {
  return `${prefix}:auth-epoch`;
}

/** What `readEpoch` answers when Redis could not be read: nothing cached may be used or filled. */
export const NO_EPOCH = Symbol('no epoch');
export type Epoch = string | typeof NO_EPOCH;

export class PrincipalCache {
  readonly #entries = new Map<string, Entry>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #redis: RedisClient;
  readonly #key: string;

  constructor(redis: RedisClient, key: string, options: PrincipalCacheOptions = {}) {
    this.#redis = redis;
    this.#key = key;
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  async readEpoch(): Promise<Epoch> {
    try {
      const epoch = await this.#redis.get(this.#key);
      if (epoch !== null) return epoch;
      await this.#redis.set(this.#key, randomUUID(), 'NX');
      return NO_EPOCH;
    } catch {
      return NO_EPOCH;
    }
  }

  /** The cached principal of this key hash, if it was filled under `epoch` and may be used now. */
  get(hash: string, epoch: Epoch, now = Date.now()): Principal | undefined {
    if (epoch === NO_EPOCH) return undefined;
    const entry = this.#entries.get(hash);
    if (!entry) return undefined;
    const expiresAt = entry.principal.expiresAt;
    if (
      entry.epoch !== epoch ||
      now - entry.filledAt > this.#ttlMs ||
      (expiresAt !== null && expiresAt.getTime() <= now)
    ) {
      this.#entries.delete(hash);
      return undefined;
    }
    return entry.principal;
  }

  /** Keeps a principal read from Postgres after `epoch` was read. */
  set(hash: string, principal: Principal, epoch: Epoch, now = Date.now()): void {
    if (epoch === NO_EPOCH) return;
    this.#entries.delete(hash);
    if (this.#entries.size >= this.#maxEntries) {
      // Maps iterate in insertion order: the first entry is the oldest.
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(hash, { principal, epoch, filledAt: now });
  }

  get size(): number {
    return this.#entries.size;
  }
}
