import { describe, expect, it } from 'vitest';
import { backoffDelay, jitterHash, judgeAttempt, retryAfterMs, stableJitter } from './delivery.ts';
import { DEFAULT_RETRY } from './job.ts';

const now = Date.parse('2026-06-01T00:00:00Z');

describe('judging an attempt', () => {
  it('succeeds on 2xx', () => {
    expect(judgeAttempt({ kind: 'response', status: 204 }, 1, DEFAULT_RETRY, { now })).toEqual({ status: 'succeeded' });
  });
  it('fails at once on other 4xx and on 3xx', () => {
    for (const status of [400, 401, 404, 410, 301, 302]) {
      expect(judgeAttempt({ kind: 'response', status }, 1, DEFAULT_RETRY, { now }).status).toBe('failed');
    }
  });
  it('retries 408, 429, 5xx, timeouts and connection errors until attempts run out, then is dead', () => {
    for (const result of [
      { kind: 'response', status: 408 },
      { kind: 'response', status: 429 },
      { kind: 'response', status: 503 },
      { kind: 'timeout' },
      { kind: 'connection', message: 'ECONNREFUSED' },
    ] as const) {
      expect(judgeAttempt(result, 1, DEFAULT_RETRY, { now }).status).toBe('retrying');
      expect(judgeAttempt(result, 3, DEFAULT_RETRY, { now }).status).toBe('dead');
    }
  });
  it('honours Retry-After, capped at maxDelayMs', () => {
    const policy = { maxAttempts: 5, backoff: { type: 'exponential' as const, delayMs: 1000, maxDelayMs: 10_000 } };
    expect(judgeAttempt({ kind: 'response', status: 429, retryAfter: '3' }, 1, policy, { now }).retryInMs).toBe(3000);
    expect(judgeAttempt({ kind: 'response', status: 503, retryAfter: '600' }, 1, policy, { now }).retryInMs).toBe(
      10_000,
    );
    const date = new Date(now + 5_000).toUTCString();
    expect(judgeAttempt({ kind: 'response', status: 503, retryAfter: date }, 1, policy, { now }).retryInMs).toBe(5_000);
  });
  it('never retries a refused destination', () => {
    expect(
      judgeAttempt({ kind: 'refused', message: 'destination not allowed' }, 1, DEFAULT_RETRY, { now }).status,
    ).toBe('failed');
  });
});

describe('backoff', () => {
  it('doubles with jitter in the upper half, capped', () => {
    const policy = { maxAttempts: 10, backoff: { type: 'exponential' as const, delayMs: 1000, maxDelayMs: 5000 } };
    expect(backoffDelay(policy, 1, () => 0)).toBe(500);
    expect(backoffDelay(policy, 1, () => 1)).toBe(1000);
    expect(backoffDelay(policy, 3, () => 1)).toBe(4000);
    expect(backoffDelay(policy, 8, () => 1)).toBe(5000);
    expect(backoffDelay({ ...policy, backoff: { ...policy.backoff, type: 'fixed' } }, 5)).toBe(1000);
  });
  it('reads Retry-After in seconds or as a date', () => {
    expect(retryAfterMs('2', now)).toBe(2000);
    expect(retryAfterMs(undefined, now)).toBeUndefined();
    expect(retryAfterMs('soon', now)).toBeUndefined();
  });
  it('jitters an occurrence the same way every time', () => {
    expect(stableJitter('job:1:123', 1000)).toBe(stableJitter('job:1:123', 1000));
    expect(stableJitter('job:1:123', 0)).toBe(0);
    const spread = new Set(Array.from({ length: 50 }, (_, i) => stableJitter(`k${i}`, 1000)));
    expect(spread.size).toBeGreaterThan(30);
  });
  it('jitters as jitterHash % (jitterMs + 1), the form the worker computes in SQL', () => {
    for (const key of ['job:1:123', 'a', '0190f2c4-7e8a-7b3c-9d10-1234567890ab:1764200000000']) {
      const hash = jitterHash(key);
      expect(Number.isInteger(hash) && hash >= 0 && hash < 2 ** 32).toBe(true);
      for (const jitterMs of [1, 999, 60_000]) expect(stableJitter(key, jitterMs)).toBe(hash % (jitterMs + 1));
    }
  });
});
