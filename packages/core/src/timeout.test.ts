import { describe, expect, it } from 'vitest';
import { TimeoutError, succeedsWithin, withTimeout } from './timeout.ts';

const pendingTimers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
const never = () => new Promise<never>(() => {});

describe('withTimeout', () => {
  it('answers what the work answers and leaves no timer behind', async () => {
    const before = pendingTimers();
    expect(await withTimeout(Promise.resolve(42), 60_000)).toBe(42);
    expect(pendingTimers()).toBe(before);
  });

  it('passes the work’s own failure through', async () => {
    const failure = new Error('refused');
    await expect(withTimeout(Promise.reject(failure), 60_000)).rejects.toBe(failure);
  });

  it('rejects with a TimeoutError naming the call once the time is up', async () => {
    const before = pendingTimers();
    const error = await withTimeout(never(), 20, 'pinging Redis').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: 'ETIMEOUT', timeoutMs: 20, message: 'pinging Redis: no answer within 20 ms' });
    expect(pendingTimers()).toBe(before);
  });
});

describe('succeedsWithin', () => {
  it('is true for work that succeeds in time, false for a failure or a timeout', async () => {
    expect(await succeedsWithin(Promise.resolve('ok'), 1_000)).toBe(true);
    expect(await succeedsWithin(Promise.reject(new Error('down')), 1_000)).toBe(false);
    expect(await succeedsWithin(never(), 20)).toBe(false);
  });
});
