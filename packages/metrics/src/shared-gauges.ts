/**
 * Gauges both the api and the worker export: their Postgres pool, their readiness, and the shared
 * `fire` queue's depth. Every value is read at scrape time, so it is as fresh as the scrape.
 *
 * The queue gauges describe one shared queue, read from Redis by every process that exports them:
 * aggregate them with `max()`, never `sum()`. Both kinds of process export them so the backlog
 * stays visible when every worker is down, which is when it matters most.
 */
import { Gauge, type Registry } from 'prom-client';
import { withTimeout } from '@tickwork/core';

/** What a pg.Pool tells about itself. */
export interface PoolStats {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
}

export function registerPoolGauges(registry: Registry, pool: PoolStats): void {
  new Gauge({
    name: 'tickwork_db_pool_total',
    help: 'Postgres connections open in this process pool (idle and in use).',
    registers: [registry],
    collect() {
      this.set(pool.totalCount);
    },
  });
  new Gauge({
    name: 'tickwork_db_pool_idle',
    help: 'Postgres connections open and idle in this process pool.',
    registers: [registry],
    collect() {
      this.set(pool.idleCount);
    },
  });
  new Gauge({
    name: 'tickwork_db_pool_waiting',
    help: 'Queries waiting for a free Postgres connection in this process pool.',
    registers: [registry],
    collect() {
      this.set(pool.waitingCount);
    },
  });
}

/** The same checks as /health/ready: true when Postgres and Redis both answer. */
export function registerReadyGauge(registry: Registry, isReady: () => Promise<boolean>): void {
  new Gauge({
    name: 'tickwork_ready',
    help: '1 when this process reaches Postgres and Redis (as /health/ready), else 0.',
    registers: [registry],
    async collect() {
      this.set((await isReady().catch(() => false)) ? 1 : 0);
    },
  });
}

/** The slice of a BullMQ Queue the queue gauges read. */
export interface QueueStats {
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
  getJobSchedulersCount(): Promise<number>;
}

export const QUEUE_STATES = ['waiting', 'delayed', 'active', 'failed'] as const;

export interface QueueGaugeOptions {
  /**
   * How long one read of Redis serves scrapes: several Prometheus servers (or a fast scrape
   * interval) then cost Redis one read per period. @defaultValue 5000
   */
  cacheMs?: number;
  /** A read that takes longer counts as failed, so a scrape never hangs on Redis. @defaultValue 1000 */
  timeoutMs?: number;
}

interface QueueSnapshot {
  at: number;
  counts: Record<string, number>;
  schedulers: number;
}

export function registerQueueGauges(registry: Registry, queue: QueueStats, options: QueueGaugeOptions = {}): void {
  const cacheMs = options.cacheMs ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 1_000;
  let last: QueueSnapshot | undefined;
  let reading: Promise<QueueSnapshot | undefined> | undefined;

  const read = async (): Promise<QueueSnapshot | undefined> => {
    if (last && Date.now() - last.at < cacheMs) return last;
    reading ??= (async () => {
      try {
        const [counts, schedulers] = await withTimeout(
          Promise.all([queue.getJobCounts(...QUEUE_STATES), queue.getJobSchedulersCount()]),
          timeoutMs,
          'queue stats',
        );
        last = { at: Date.now(), counts, schedulers };
        return last;
      } catch {
        // Redis is away: no number beats a stale one here; tickwork_ready says why.
        last = undefined;
        return undefined;
      } finally {
        reading = undefined;
      }
    })();
    return reading;
  };

  new Gauge({
    name: 'tickwork_queue_jobs',
    help: 'Occurrences in the fire queue by state (one shared queue: aggregate with max, not sum).',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const snapshot = await read();
      this.reset();
      if (!snapshot) return;
      for (const state of QUEUE_STATES) this.set({ state }, snapshot.counts[state] ?? 0);
    },
  });
  new Gauge({
    name: 'tickwork_schedulers',
    help: 'Job schedulers registered in Redis (one per active recurring job; aggregate with max).',
    registers: [registry],
    async collect() {
      const snapshot = await read();
      // An unlabelled gauge cannot be absent: NaN says "unknown" (PromQL's max() skips it).
      this.set(snapshot ? snapshot.schedulers : Number.NaN);
    },
  });
}
