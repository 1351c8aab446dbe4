/**
 * The caches' synchronous reads (`peek`), which a request with a known key and a kept job row
 * is answered from: the same answers as `read`, never another service's row, nothing while the
 * bus does not listen, nothing past the entry's age or the key's expiry.
 */
import { describe, expect, it } from 'vitest';
import type { JobRow, Principal } from '@tickwork/db';
import { JobCache, PrincipalCache, type Freshness } from './auth-cache.ts';

const bus = (live = true): Freshness & { live: boolean } => ({ live, generation: 0 });

describe('JobCache.peek', () => {
  const row = { id: 'j1', service_id: 's1', version: 1 } as unknown as JobRow;

  it("answers a kept row to its service, null to another's, undefined before a read", async () => {
    const cache = new JobCache(bus());
    expect(cache.peek('s1', 'j1')).toBeUndefined();
    await cache.read('s1', 'j1', async () => row);
    expect(cache.peek('s1', 'j1')).toBe(row);
    expect(cache.peek('s2', 'j1')).toBeNull();
    expect(await cache.read('s2', 'j1', async () => row)).toBeUndefined();
    cache.delete('j1');
    expect(cache.peek('s1', 'j1')).toBeUndefined();
  });

  it('keeps nothing while the bus does not listen, and nothing older than its TTL', async () => {
    const away = bus(false);
    const cache = new JobCache(away);
    await cache.read('s1', 'j1', async () => row);
    expect(cache.peek('s1', 'j1')).toBeUndefined();
    const expiring = new JobCache(bus(), { ttlMs: -1 });
    await expiring.read('s1', 'j1', async () => row);
    expect(expiring.peek('s1', 'j1')).toBeUndefined();
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
