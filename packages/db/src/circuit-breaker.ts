/**
 * A circuit breaker for Postgres connections. While Postgres does not answer, every request would
 * otherwise wait out the pool's connection timeout; once a connection attempt has failed, the
 * breaker opens and later attempts fail at once, until `openMs` has passed. Then one attempt
 * goes through as a probe (half-open): it closes the breaker when it succeeds and reopens it
 * when it fails; others keep failing fast meanwhile.
 */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker. @defaultValue 1 */
  failureThreshold?: number;
  /** How long the breaker stays open before a probe. @defaultValue 1000 */
  openMs?: number;
  /** What is being guarded, for error messages. @defaultValue 'Postgres' */
  name?: string;
  now?: () => number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

/** Thrown instead of trying while the breaker is open. */
export class CircuitOpenError extends Error {
  readonly code = 'ECIRCUITOPEN';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CircuitOpenError';
  }
}

export class CircuitBreaker {
  private readonly threshold: number;
  private readonly openMs: number;
  private readonly name: string;
  private readonly now: () => number;
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private lastError: unknown;
  state: CircuitState = 'closed';

  constructor(options: CircuitBreakerOptions = {}) {
    this.threshold = options.failureThreshold ?? 1;
    this.openMs = options.openMs ?? 1_000;
    this.name = options.name ?? 'Postgres';
    this.now = options.now ?? Date.now;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.state === 'open' && this.now() - this.openedAt >= this.openMs) this.state = 'half-open';
    if (this.state === 'open' || (this.state === 'half-open' && this.probing)) {
      const reason = (this.lastError as Error | undefined)?.message ?? 'it failed';
      throw new CircuitOpenError(`${this.name} is not answering (${reason}); not trying again for now`, {
        cause: this.lastError,
      });
    }
    const probe = this.state === 'half-open';
    if (probe) this.probing = true;
    try {
      const result = await work();
      this.failures = 0;
      this.state = 'closed';
      return result;
    } catch (error) {
      this.lastError = error;
      this.failures++;
      if (probe || this.failures >= this.threshold) {
        this.state = 'open';
        this.openedAt = this.now();
      }
      throw error;
    } finally {
      if (probe) this.probing = false;
    }
  }
}
