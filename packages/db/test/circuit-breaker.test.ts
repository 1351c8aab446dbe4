import { describe, expect, it } from 'vitest';
import { CircuitBreaker, CircuitOpenError } from '../src/circuit-breaker.ts';

function clock() {
  let now = 0;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}
const fail = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
const succeed = () => Promise.resolve('ok');

describe('CircuitBreaker', () => {
  it('opens after a failure and fails fast without trying', async () => {
    const time = clock();
    const breaker = new CircuitBreaker({ openMs: 1_000, now: time.now });
    await expect(breaker.run(fail)).rejects.toThrow(/ECONNREFUSED/);
    expect(breaker.state).toBe('open');
    let tried = false;
    await expect(
      breaker.run(async () => {
        tried = true;
      }),
    ).rejects.toBeInstanceOf(CircuitOpenError);
    expect(tried).toBe(false);
  });

  it('lets one probe through after openMs; success closes it', async () => {
    const time = clock();
    const breaker = new CircuitBreaker({ openMs: 1_000, now: time.now });
    await breaker.run(fail).catch(() => {});
    time.advance(1_000);
    let release!: () => void;
    const probe = breaker.run(() => new Promise<string>((resolve) => (release = () => resolve('ok'))));
    expect(breaker.state).toBe('half-open');
    await expect(breaker.run(succeed)).rejects.toBeInstanceOf(CircuitOpenError);
    release();
    await expect(probe).resolves.toBe('ok');
    expect(breaker.state).toBe('closed');
    await expect(breaker.run(succeed)).resolves.toBe('ok');
  });

  it('reopens when the probe fails', async () => {
    const time = clock();
    const breaker = new CircuitBreaker({ openMs: 1_000, now: time.now });
    await breaker.run(fail).catch(() => {});
    time.advance(1_500);
    await expect(breaker.run(fail)).rejects.toThrow(/ECONNREFUSED/);
    expect(breaker.state).toBe('open');
    time.advance(999);
    await expect(breaker.run(succeed)).rejects.toBeInstanceOf(CircuitOpenError);
  });

  it('waits for the threshold of consecutive failures', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 3 });
    await breaker.run(fail).catch(() => {});
    await breaker.run(succeed);
    await breaker.run(fail).catch(() => {});
    await breaker.run(fail).catch(() => {});
    expect(breaker.state).toBe('closed');
    await breaker.run(fail).catch(() => {});
    expect(breaker.state).toBe('open');
  });
});
