/**
 * What an attempt's result means, and when to try again. Pure: the worker hands in the HTTP
 * status (or the failure) and gets back the run's next status and the delay before a retry.
 */
import type { RetryPolicy } from './job.ts';
import type { RunStatus } from './schemas.ts';

export type AttemptResult =
  | { kind: 'response'; status: number; retryAfter?: string | undefined }
  | { kind: 'timeout' }
  | { kind: 'connection'; message: string }
  | { kind: 'refused'; message: string };

/** 408, 429 and 5xx are worth another try; other 4xx and 3xx are the caller's to fix. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

export interface AttemptVerdict {
  status: Extract<RunStatus, 'succeeded' | 'retrying' | 'failed' | 'dead'>;
  /** For `retrying`: wait this long before the next attempt. */
  retryInMs?: number;
}

/**
 * Reads `Retry-After` (seconds or an HTTP date) as a delay in ms from `now`; undefined when absent
 * or unreadable.
 */
export function retryAfterMs(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1_000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * The delay before attempt `attempt + 1`, after `attempt` attempts failed. Exponential backoff
 * doubles from `delayMs` with "full jitter" (a random point in the upper half, so retries of
 * many runs spread out); fixed backoff waits `delayMs`. Both are capped at `maxDelayMs`.
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const { type, delayMs, maxDelayMs } = policy.backoff;
  if (type === 'fixed') return Math.min(delayMs, maxDelayMs);
  const base = Math.min(maxDelayMs, delayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + random() * (base / 2));
}

/** Decides the run's status after attempt number `attempt` (1-based). */
export function judgeAttempt(
  result: AttemptResult,
  attempt: number,
  policy: RetryPolicy,
  options: { now: number; random?: () => number },
): AttemptVerdict {
  if (result.kind === 'response' && result.status >= 200 && result.status < 300) return { status: 'succeeded' };
  if (result.kind === 'refused') return { status: 'failed' };
  const retryable = result.kind !== 'response' || isRetryableStatus(result.status);
  if (!retryable) return { status: 'failed' };
  if (attempt >= policy.maxAttempts) return { status: 'dead' };
  const asked = result.kind === 'response' ? retryAfterMs(result.retryAfter, options.now) : undefined;
  const retryInMs =
    asked !== undefined ? Math.min(asked, policy.backoff.maxDelayMs) : backoffDelay(policy, attempt, options.random);
  return { status: 'retrying', retryInMs };
}

/**
 * A delay that is the same on every retry of one occurrence (so `jitterMs` does not move the
 * occurrence each time it is retried): a hash of the run's key, scaled to `[0, jitterMs]`.
 */
export function stableJitter(key: string, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  return jitterHash(key) % (jitterMs + 1);
}

/**
 * The hash {@link stableJitter} scales (FNV-1a, 32 bits, unsigned): the jitter of `key` is
 * `jitterHash(key) % (jitterMs + 1)`, which SQL can compute from the job row's `jitter_ms`.
 */
export function jitterHash(key: string): number {
  let hash = 2166136261;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  return hash >>> 0;
}
