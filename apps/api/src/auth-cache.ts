/**
 * What an api instance keeps in process so a read need not ask Postgres or Redis: principals of
 * API keys, and job rows. Both are trusted only while the instance's cache bus listens
 * (`CacheBus` of `@tickwork/db`, migration 0061): every change to a key or a service empties the
 * principals on every instance, and a new job version or a delete drops that job's row.
 *
 * Revocation still holds at once on every api instance: an admin change that can make
 * a key unusable or change what a principal carries answers only after every listening instance
 * acknowledged a barrier sent after its commit (`CacheBus.barrier`). A principal is filled only
 * if no invalidation arrived between the generation read before its Postgres read and the fill,
 * so a change committed in between is never cached over. Expiry is checked against the key's
 * `expires_at` here. Entries also age out after `ttlMs`, and at most `maxEntries` are kept.
 *
 * Job rows age out after one second whatever happens (`JobCache`): the workers' per-occurrence
 * writes (`runCount`, `lastRunAt`, `nextRunAt`) send no notification, so a cached row is at most
 * that old; a new version or a delete is dropped at once on every instance, and the instance
 * that makes it drops it before it answers. A row that aged out is checked by its version
 * (`xmin`) rather than read again: while it is unchanged Postgres sends only the version, and the
 * same row object (with the answer serialized from it) is kept for another second.
 */
import type { JobRow, Principal } from '@tickwork/db';

/** Where invalidations come from: the cache bus, or nothing when caching is off. */
export interface Freshness {
  readonly live: boolean;
  readonly generation: number;
}

interface Entry<T> {
  value: T;
  filledAt: number;
  /** The row version it was read at (a job row's `xmin`), when known. */
  stamp?: string | undefined;
}

class BoundedMap<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #maxEntries: number;
  #generation = 0;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  get generation(): number {
    return this.#generation;
  }

  get(key: string): Entry<T> | undefined {
    return this.#entries.get(key);
  }

  set(key: string, value: T, now: number, stamp?: string): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) {
      // Maps iterate in insertion order: the first entry is the oldest.
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, filledAt: now, stamp });
  }

  delete(key: string): void {
    this.#generation++;
    this.#entries.delete(key);
  }

  clear(): void {
    this.#generation++;
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}

export interface CacheOptions {
  ttlMs?: number;
  maxEntries?: number;
}

/** Principals by key hash. */
export class PrincipalCache {
  readonly #map: BoundedMap<Principal>;
  readonly #ttlMs: number;
  readonly #bus: Freshness;

  constructor(bus: Freshness, options: CacheOptions = {}) {
    this.#bus = bus;
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#map = new BoundedMap(options.maxEntries ?? 10_000);
  }

  /**
   * The key's principal when this instance holds it fresh (the bus listens, the entry is young
   * enough, the key not expired), else undefined: `read` then asks Postgres. No promise, so a
   * request with a known key is authenticated without waiting for a turn of the event loop.
   */
  peek(hash: string, now = Date.now()): Principal | undefined {
    if (!this.#bus.live) return undefined;
    const entry = this.#map.get(hash);
    if (entry === undefined) return undefined;
    const expiresAt = entry.value.expiresAt;
    if (now - entry.filledAt <= this.#ttlMs && (expiresAt === null || expiresAt.getTime() > now)) return entry.value;
    this.#map.delete(hash);
    return undefined;
  }

  /** The key's principal: cached when the bus listens and the entry is fresh, else from `load`. */
  async read(hash: string, load: () => Promise<Principal | undefined>, now = Date.now()) {
    if (!this.#bus.live) return load();
    const cached = this.peek(hash, now);
    if (cached !== undefined) return cached;
    const before = this.#bus.generation + this.#map.generation;
    const principal = await load();
    if (principal && this.#bus.live && this.#bus.generation + this.#map.generation === before) {
      this.#map.set(hash, principal, Date.now());
    }
    return principal;
  }

  clear(): void {
    this.#map.clear();
  }

  get size(): number {
    return this.#map.size;
  }
}

/**
 * A job's row read from Postgres with its version (`xmin`); given the version of the row the
 * cache holds, `row` is undefined while the job is still that version. Undefined: no such job.
 */
export type JobLoad = (stamp?: string) => Promise<{ stamp: string; row: JobRow | undefined } | undefined>;

/** Job rows by id, at most `ttlMs` (1 s) old; a row of another service is never answered. */
export class JobCache {
  readonly #map: BoundedMap<JobRow>;
  readonly #ttlMs: number;
  readonly #bus: Freshness;
  /** Loads in flight, by service and job, with the generation each began at. */
  readonly #loading = new Map<string, { generation: number; row: Promise<JobRow | undefined> }>();

  constructor(bus: Freshness, options: CacheOptions = {}) {
    this.#bus = bus;
    this.#ttlMs = options.ttlMs ?? 1_000;
    this.#map = new BoundedMap(options.maxEntries ?? 10_000);
  }

  /**
   * The job's row when this instance holds it fresh: the row, `null` when the row is another
   * service's (tenant isolation: "no such job", as Postgres would answer), undefined when it
   * must be read. No promise, so a cached read answers within the request's own turn.
   */
  peek(serviceId: string, id: string): JobRow | null | undefined {
    if (!this.#bus.live) return undefined;
    const entry = this.#map.get(id);
    if (entry === undefined || Date.now() - entry.filledAt > this.#ttlMs) return undefined;
    return entry.value.service_id === serviceId ? entry.value : null;
  }

  /**
   * The job's row: cached, else from `load`. Reads of one job that miss together share one load
   * (a job that many clients poll costs one Postgres read when its row ages out, not one per
   * waiting request), but only while no invalidation has arrived since that load began: a
   * request after a change never joins a read that may predate it.
   *
   * A row that has aged out is checked rather than read again: `load` gets the version it was
   * read at and answers `row: undefined` while the job's row is still that version; the row kept
   * (the same object, so what was made of it, such as its serialized answer, is reused) is then
   * answered, and kept again as of this read.
   */
  read(serviceId: string, id: string, load: JobLoad): Promise<JobRow | undefined> {
    const cached = this.peek(serviceId, id);
    if (cached !== undefined) return Promise.resolve(cached ?? undefined);
    if (!this.#bus.live) return load().then((found) => found?.row);
    const before = this.#bus.generation + this.#map.generation;
    // The load is the service's own (another service's job reads as none), so it is keyed by both.
    const key = `${serviceId} ${id}`;
    const pending = this.#loading.get(key);
    if (pending !== undefined && pending.generation === before) return pending.row;
    // An entry past its age, of this service: its version is what the load checks against.
    const held = this.#map.get(id);
    const kept = held?.stamp !== undefined && held.value.service_id === serviceId ? held : undefined;
    const started = Date.now();
    const entry = {
      generation: before,
      row: load(kept?.stamp)
        .then((found) => {
          if (found === undefined) return undefined;
          // Unchanged since it was kept: the row of that version is the row now.
          const row = found.row ?? (found.stamp === kept?.stamp ? kept.value : undefined);
          if (row === undefined) throw new Error(`job ${id}: the load answered no row for a version it was not given`);
          if (this.#bus.live && this.#bus.generation + this.#map.generation === before) {
            // Aged from before the read: the row is no newer than that.
            this.#map.set(id, row, started, found.stamp);
          }
          return row;
        })
        .finally(() => {
          if (this.#loading.get(key) === entry) this.#loading.delete(key);
        }),
    };
    this.#loading.set(key, entry);
    return entry.row;
  }

  /** How long a row is kept at most: a row read before a change is gone this long after it. */
  get ttlMs(): number {
    return this.#ttlMs;
  }

  /** Drops a job's row (a change of this instance's, before it answers; or a notification). */
  delete(id: string): void {
    this.#map.delete(id);
  }

  clear(): void {
    this.#map.clear();
  }

  get size(): number {
    return this.#map.size;
  }
}
