/** How the worker's outcomes become metrics: the FireResult / RetryLaterError mapping. */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { cronRepeatStrategy } from '@tickwork/queue';
import { sampleValue, parseExposition } from '@tickwork/testkit';
import { RetryLaterError } from '../src/fire/index.ts';
import {
  countReconcileRepairs,
  createWorkerRegistry,
  observeFireResult,
  observeRetry,
  observeScheduleErrors,
} from '../src/metrics.ts';

// Fixed stand-ins for the pool and queue: these tests are about turning outcomes into samples;
// the real pool and Redis behind the gauges are scraped in e2e/observability.test.ts.
const registry = createWorkerRegistry({
  pool: { totalCount: 3, idleCount: 2, waitingCount: 0 },
  queue: {
    getJobCounts: async () => ({ waiting: 4, delayed: 7, active: 1, failed: 0 }),
    getJobSchedulersCount: async () => 6,
  },
  isReady: async () => true,
});
const scrape = async () => parseExposition(await registry.metrics());

describe('worker metrics', () => {
  it('counts a delivered attempt by status and trigger, with its lag and duration', async () => {
    const before = await scrape();
    const t = Date.now();
    observeFireResult({
      outcome: 'delivered',
      runId: 'r1',
      status: 'dead',
      trigger: 'manual',
      attempt: 1,
      scheduledFor: t - 250,
      deliveryStartedAt: t,
      durationMs: 40,
    });
    const after = await scrape();
    const delta = (name: string, labels = {}) =>
      (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
    expect(delta('tickwork_runs_total', { status: 'dead', trigger: 'manual' })).toBe(1);
    expect(delta('tickwork_fire_lag_seconds_count')).toBe(1);
    expect(delta('tickwork_fire_lag_seconds_bucket', { le: '0.25' })).toBe(1);
    expect(delta('tickwork_fire_lag_seconds_bucket', { le: '0.1' })).toBe(0);
    expect(delta('tickwork_callback_duration_seconds_count')).toBe(1);
  });

  it('observes fire lag on first attempts of scheduled and manual runs only', async () => {
    const before = await scrape();
    const t = Date.now();
    const base = {
      outcome: 'delivered',
      runId: 'r',
      status: 'succeeded',
      scheduledFor: t - 86_400_000,
      deliveryStartedAt: t,
      durationMs: 5,
    } as const;
    observeFireResult({ ...base, trigger: 'schedule', attempt: 2 });
    observeFireResult({ ...base, trigger: 'replay', attempt: 1 });
    const after = await scrape();
    expect(sampleValue(after, 'tickwork_fire_lag_seconds_count')).toBe(
      sampleValue(before, 'tickwork_fire_lag_seconds_count'),
    );
    expect(sampleValue(after, 'tickwork_callback_duration_seconds_count')).toBe(
      sampleValue(before, 'tickwork_callback_duration_seconds_count')! + 2,
    );
  });

  it('counts a retry as a retrying run and a retry, and a skip as skipped; ignores what records nothing', async () => {
    const before = await scrape();
    const t = Date.now();
    observeRetry(
      new RetryLaterError(1_000, 'HTTP 503', {
        runId: 'r2',
        trigger: 'schedule',
        attempt: 1,
        scheduledFor: t - 5,
        deliveryStartedAt: t,
        durationMs: 12,
      }),
    );
    observeRetry(new RetryLaterError(1_000, 'no details'));
    observeFireResult({ outcome: 'skipped', reason: 'overlap', runId: 'r3', trigger: 'schedule', scheduledFor: t });
    observeFireResult({ outcome: 'gone' });
    observeFireResult({ outcome: 'already-ended', runId: 'r4' });
    const after = await scrape();
    const delta = (name: string, labels = {}) =>
      (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
    expect(delta('tickwork_runs_total', { status: 'retrying', trigger: 'schedule' })).toBe(1);
    expect(delta('tickwork_retries_total', { trigger: 'schedule' })).toBe(1);
    expect(delta('tickwork_runs_total', { status: 'skipped', trigger: 'schedule' })).toBe(1);
    expect(delta('tickwork_fire_lag_seconds_count')).toBe(1);
  });

  it('counts what the reconciler repaired, by kind', async () => {
    const before = await scrape();
    countReconcileRepairs('missing', 3);
    countReconcileRepairs('missing', 0);
    const after = await scrape();
    const delta = (kind: string) =>
      sampleValue(after, 'tickwork_reconcile_repairs_total', { kind })! -
      sampleValue(before, 'tickwork_reconcile_repairs_total', { kind })!;
    expect(delta('missing')).toBe(3);
    expect(delta('orphan')).toBe(0);
  });

  it('shows schedule errors at 0, then counts and logs each next instant the strategy could not compute', async () => {
    expect(sampleValue(await scrape(), 'tickwork_schedule_errors_total')).toBe(0);
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const stop = observeScheduleErrors(logger);
    // As a job stored before the dialect refused H would be asked by BullMQ for its next instant.
    expect(cronRepeatStrategy(Date.parse('2026-06-01T00:00:00Z'), { pattern: 'H 3 * * *', tz: 'UTC' })).toBeUndefined();
    stop();
    cronRepeatStrategy(Date.parse('2026-06-01T00:00:00Z'), { pattern: 'H 3 * * *', tz: 'UTC' });
    expect(sampleValue(await scrape(), 'tickwork_schedule_errors_total')).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 50,
        cron: 'H 3 * * *',
        timezone: 'UTC',
        msg: expect.stringMatching(/could not compute/),
      }),
    ]);
  });
});
