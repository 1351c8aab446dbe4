/** Thrown by {@link withTimeout} when the work did not settle in time. */
export class TimeoutError extends Error {
  readonly code = 'ETIMEOUT';
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number) {
    super(message);
    this.name = 'TimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Settles as `work` does, or rejects with a {@link TimeoutError} once `ms` have passed. For calls
 * that take no `AbortSignal` (pg's pool, ioredis commands): the work itself goes on, only the
 * wait ends. The timer is cleared as soon as either side settles, so no timer outlives the race.
 */
export async function withTimeout<T>(work: Promise<T>, ms: number, what = 'the call'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${ms} ms`, ms)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `work` succeeds within `ms` (a probe: a failure and a timeout both answer false). */
export function succeedsWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(work, ms).then(
    () => true,
    () => false,
  );
}
