/**
 * Stops a worker from taking occurrences while Postgres does not answer, and lets it go on when
 * Postgres is back. Occurrences wait in Redis meanwhile (nothing is taken, so nothing fails);
 * when they run late, each job's misfire policy decides what becomes of them.
 */
import type { Logger } from 'pino';
import { succeedsWithin } from '@tickwork/core';

export interface PostgresWatchOptions {
  /** Resolves when Postgres answers; rejects (or times out) when it does not. */
  check(): Promise<unknown>;
  pause(): Promise<void>;
  resume(): void;
  logger: Logger;
  /** @defaultValue 1000 */
  intervalMs?: number;
  /** @defaultValue 1000 */
  timeoutMs?: number;
}

export interface PostgresWatch {
  /** Whether Postgres answered the last check. */
  up(): boolean;
  /** Checks at once (an occurrence just failed to reach Postgres): pauses sooner. */
  checkNow(): void;
  stop(): void;
}

export function watchPostgres(options: PostgresWatchOptions): PostgresWatch {
  const intervalMs = options.intervalMs ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 1_000;
  let up = true;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let checking = false;

  const tick = async () => {
    if (checking) return;
    checking = true;
    clearTimeout(timer);
    const answered = await succeedsWithin(options.check(), timeoutMs);
    checking = false;
    if (stopped) return;
    if (up && !answered) {
      up = false;
      options.logger.error('Postgres does not answer: taking no occurrences until it does');
      await options
        .pause()
        .catch((error: unknown) => options.logger.warn({ err: error }, 'could not pause the worker'));
    } else if (!up && answered) {
      up = true;
      options.logger.warn('Postgres answers again: taking occurrences');
      options.resume();
    }
    timer = setTimeout(() => void tick(), intervalMs);
    timer.unref();
  };
  timer = setTimeout(() => void tick(), intervalMs);
  timer.unref();

  return {
    up: () => up,
    checkNow() {
      if (up && !stopped) void tick();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
