/** The start-up check of Redis's eviction policy, against real Redis servers. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { testBaseUrls, startOwnRedis, type OwnRedis } from '@tickwork/testkit';
import { EVICTION_WARNING, evictionPolicyOf, warnUnlessNoeviction } from '../src/eviction.ts';

interface Line {
  fields: Record<string, unknown>;
  message: string;
}
function captureWarnings() {
  const lines: Line[] = [];
  return {
    lines,
    warn: (fields: object, message: string) => lines.push({ fields: fields as Record<string, unknown>, message }),
  };
}

let lru: OwnRedis;
let lruWithoutConfig: OwnRedis;

beforeAll(async () => {
  [lru, lruWithoutConfig] = await Promise.all([
    startOwnRedis(['--maxmemory-policy', 'allkeys-lru']),
    startOwnRedis(['--maxmemory-policy', 'volatile-lru', '--rename-command', 'CONFIG', '']),
  ]);
});
afterAll(async () => {
  await Promise.all([lru?.stop(), lruWithoutConfig?.stop()]);
});

describe('warnUnlessNoeviction', () => {
  it('stays quiet on a Redis with noeviction (the shared one)', async () => {
    const shared = new Redis(testBaseUrls().redisUrl);
    const policy = await evictionPolicyOf(shared).finally(() => shared.disconnect());
    // The check is only meaningful when the shared Redis runs as production must.
    expect(policy).toBe('noeviction');
    const logger = captureWarnings();
    expect(await warnUnlessNoeviction(testBaseUrls().redisUrl, logger)).toBe('noeviction');
    expect(logger.lines).toEqual([]);
  });

  it('warns loudly, naming the setting, on a Redis that evicts', async () => {
    const logger = captureWarnings();
    expect(await warnUnlessNoeviction(lru.url, logger)).toBe('allkeys-lru');
    expect(logger.lines).toEqual([
      {
        fields: { setting: 'maxmemory-policy', actual: 'allkeys-lru', expected: 'noeviction' },
        message: EVICTION_WARNING,
      },
    ]);
    expect(EVICTION_WARNING).toMatch(/maxmemory-policy noeviction/);
  });

  it('reads INFO memory when CONFIG is disabled, as on managed Redis services', async () => {
    const client = new Redis(lruWithoutConfig.url);
    await expect(client.config('GET', 'maxmemory-policy')).rejects.toThrow(/unknown command/i);
    client.disconnect();
    const logger = captureWarnings();
    expect(await warnUnlessNoeviction(lruWithoutConfig.url, logger)).toBe('volatile-lru');
    expect(logger.lines[0]?.fields).toMatchObject({ actual: 'volatile-lru' });
  });

  it('says it could not check when Redis does not answer, and does not throw', async () => {
    const gone = await startOwnRedis();
    await gone.stop();
    const logger = captureWarnings();
    expect(await warnUnlessNoeviction(gone.url, logger)).toBeUndefined();
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]?.message).toMatch(/could not read Redis maxmemory-policy/);
  });
});
