/**
 * The caches' synchronous reads (`peek`), which a request with a known key and a kept job row
 * is answered from: the same answers as `read`, never another service's row, nothing while the
 * bus does not listen, nothing past the entry's age or the key's expiry.
 */
import { describe, expect, it } from 'vitest';
import type { JobRow, Principal } from '@tickwork/db';
import { JobCache, PrincipalCache, type Freshness, type JobLoad } from './auth-cache.ts';

const bus = (live = true): Freshness & { live: boolean; generation: number } => ({ live, generation: 0 });
/** A load that answers this row at version `stamp`. */
const loads =
  (row: JobRow | undefined, stamp = '1'): JobLoad =>
  async () =>
    row && { stamp, row };

describe('JobCache.peek', () => {
  const row = { id: 'j1', service_id: 's1', version: 1 } as unknown as JobRow;

  it("answers a kept row to its service, null to another's, undefined before a read", async () => {
    const cache = new JobCache(bus());
    expect(cache.peek('s1', 'j1')).toBeUndefined();
    await cache.read('s1', 'j1', loads(row));
    expect(cache.peek('s1', 'j1')).toBe(row);
    expect(cache.peek('s2', 'j1')).toBeNull();
    expect(await cache.read('s2', 'j1', loads(row))).toBeUndefined();
    cache.delete('j1');
    expect(cache.peek('s1', 'j1')).toBeUndefined();
  });

  it('keeps nothing while the bus does not listen, and nothing older than its TTL', async () => {
    const away = bus(false);
    const cache = new JobCache(away);
    await cache.read('s1', 'j1', loads(row));
    expect(cache.peek('s1', 'j1')).toBeUndefined();
    const expiring = new JobCache(bus(), { ttlMs: -1 });
    await expiring.read('s1', 'j1', loads(row));
    expect(expiring.peek('s1', 'j1')).toBeUndefined();
  });
});

describe('JobCache.read', () => {
  const row = { id: 'j1', service_id: 's1', version: 1 } as unknown as JobRow;
  /** A load that answers when told to, counting its calls. */
  const gated = () => {
    const calls: Array<(row: JobRow | undefined) => void> = [];
    const load: JobLoad = () =>
      new Promise((resolve) => calls.push((row) => resolve(row && { stamp: String(row.version), row })));
    return { calls, load };
  };

  it('shares one load between reads of one job that miss together', async () => {
    const cache = new JobCache(bus());
    const { calls, load } = gated();
    const reads = [cache.read('s1', 'j1', load), cache.read('s1', 'j1', load), cache.read('s1', 'j1', load)];
    expect(calls).toHaveLength(1);
    calls[0]!(row);
    expect(await Promise.all(reads)).toEqual([row, row, row]);
    // Settled: the next miss loads again.
    cache.delete('j1');
    void cache.read('s1', 'j1', load);
    expect(calls).toHaveLength(2);
  });

  it("never shares a load with another service's read, nor one begun before an invalidation", async () => {
    const freshness = bus();
    const cache = new JobCache(freshness);
    const { calls, load } = gated();
    const first = cache.read('s1', 'j1', load);
    const other = cache.read('s2', 'j1', load);
    expect(calls).toHaveLength(2);
    cache.delete('j1'); // a change of the job arrives while the first load is in flight
    const after = cache.read('s1', 'j1', load);
    expect(calls).toHaveLength(3);
    freshness.generation++; // the bus reset (a reconnect): the same
    const later = cache.read('s1', 'j1', load);
    expect(calls).toHaveLength(4);
    const newer = { ...row, version: 2 } as unknown as JobRow;
    calls[0]!(row);
    calls[1]!(undefined);
    calls[2]!(newer);
    calls[3]!(newer);
    expect(await first).toBe(row);
    expect(await other).toBeUndefined();
    expect(await after).toBe(newer);
    expect(await later).toBe(newer);
    // Only the load begun after the last invalidation filled the cache.
    expect(cache.peek('s1', 'j1')).toBe(newer);
  });
});

describe('JobCache.read of a row past its age', () => {
  const row = { id: 'j1', service_id: 's1', version: 1 } as unknown as JobRow;

  it('checks it by its version: the same row object while unchanged, the new row once changed', async () => {
    // Every entry is past its age at once: each read is a refill.
    const cache = new JobCache(bus(), { ttlMs: -1 });
    const given: Array<string | undefined> = [];
    let current: { stamp: string; row: JobRow | undefined } | undefined = { stamp: '10', row };
    const load: JobLoad = async (stamp) => {
      given.push(stamp);
      if (current === undefined) return undefined;
      return stamp === current.stamp ? { stamp, row: undefined } : current;
    };
    expect(await cache.read('s1', 'j1', load)).toBe(row);
    expect(await cache.read('s1', 'j1', load)).toBe(row);
    expect(given).toEqual([undefined, '10']);
    const newer = { ...row, version: 2 } as unknown as JobRow;
    current = { stamp: '11', row: newer };
    expect(await cache.read('s1', 'j1', load)).toBe(newer);
    expect(await cache.read('s1', 'j1', load)).toBe(newer);
    expect(given).toEqual([undefined, '10', '10', '11']);
    // Another service's read never checks against this service's row.
    const otherService: JobLoad = async (stamp) => {
      given.push(stamp);
      return undefined;
    };
    expect(await cache.read('s2', 'j1', otherService)).toBeUndefined();
    expect(given.at(-1)).toBeUndefined();
    current = undefined; // deleted
    expect(await cache.read('s1', 'j1', load)).toBeUndefined();
  });

  it('answers a check that raced an invalidation but keeps nothing of it', async () => {
    const aged = new JobCache(bus(), { ttlMs: -1 });
    await aged.read('s1', 'j1', loads(row, '10'));
    let release: () => void = () => {};
    const checked = aged.read(
      's1',
      'j1',
      (stamp) =>
        new Promise((resolve) => {
          release = () => resolve({ stamp: stamp!, row: undefined });
        }),
    );
    aged.delete('j1'); // a change arrives while the check is in flight
    release();
    // The check's answer is as fresh as its read (as a full read's would be), but not kept.
    expect(await checked).toBe(row);
    expect(aged.size).toBe(0);
  });
});

describe('PrincipalCache.peek', () => {
  const principal = (expiresAt: Date | null) => ({ keyId: 'k1', expiresAt }) as unknown as Principal;

  it('answers a kept principal until the key expires, then drops it', async () => {
    const cache = new PrincipalCache(bus());
    const now = Date.now();
    await cache.read('h', async () => principal(new Date(now + 1_000)), now);
    expect(cache.peek('h', now)?.keyId).toBe('k1');
    expect(cache.peek('h', now + 1_000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('answers nothing while the bus does not listen, or after a clear', async () => {
    const listening = bus();
    const cache = new PrincipalCache(listening);
    await cache.read('h', async () => principal(null));
    expect(cache.peek('h')).toBeDefined();
    cache.clear();
    expect(cache.peek('h')).toBeUndefined();
    await cache.read('h', async () => principal(null));
    listening.live = false;
    expect(cache.peek('h')).toBeUndefined();
  });
});
