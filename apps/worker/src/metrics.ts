/**
 * The worker's Prometheus metrics, served on WORKER_PORT at /metrics. Outcomes are observed from
 * the BullMQ Worker's events (`completed` carries a FireResult, `failed` a RetryLaterError for a
 * retry), so the occurrence logic in fire/ knows nothing of metrics.
 *
 * Counters and histograms describe the process, so they live once per process and join every
 * registry made here; the gauges belong to one started worker (its pool, its readiness). Every
 * labelled counter starts at 0 for each value its labels can take, so a fresh worker's scrape
 * already holds every series: a dashboard shows 0 on a healthy system rather than "No data", and
 * `increase()` counts the first event too.
 */
import { Counter, Histogram, type Metric, type Registry } from 'prom-client';
import type { Worker } from 'bullmq';
import type { Logger } from 'pino';
import {
  DURATION_BUCKETS,
  FIRE_LAG_BUCKETS,
  createRegistry,
  registerAlertGauge,
  registerPoolGauges,
  registerQueueGauges,
  registerReadyGauge,
  type PoolStats,
  type QueueStats,
} from '@tickwork/metrics';
import { RUN_STATUSES, RUN_TRIGGERS, onScheduleError } from '@tickwork/core';
import type { FireJobData } from '@tickwork/queue';
import { RetryLaterError, type FireResult } from './fire/index.ts';
import { REPAIR_KINDS, type RepairKind } from './reconcile.ts';

const runs = new Counter({
  name: 'tickwork_runs_total',
  help: 'Attempt outcomes by run status (succeeded, failed, dead, retrying, skipped) and trigger.',
  labelNames: ['status', 'trigger'],
  registers: [],
});
const fireLag = new Histogram({
  name: 'tickwork_fire_lag_seconds',
  help: 'Delivery start minus the scheduled instant, first attempt of scheduled and manual runs.',
  buckets: FIRE_LAG_BUCKETS,
  registers: [],
});
const callbackDuration = new Histogram({
  name: 'tickwork_callback_duration_seconds',
  help: 'Duration of each callback attempt, until the answer (or the timeout).',
  buckets: DURATION_BUCKETS,
  registers: [],
});
const retries = new Counter({
  name: 'tickwork_retries_total',
  help: 'Callback attempts that will be retried (408, 429, 5xx, timeouts, connection errors).',
  labelNames: ['trigger'],
  registers: [],
});
const reconcileRepairs = new Counter({
  name: 'tickwork_reconcile_repairs_total',
  help: 'Differences between Postgres and Redis the reconciler repaired, by kind.',
  labelNames: ['kind'],
  registers: [],
});
const scheduleErrors = new Counter({
  name: 'tickwork_schedule_errors_total',
  help: 'Next instants of a cron schedule that could not be computed (the job does not fire until one can).',
  registers: [],
});
const PROCESS_METRICS: Array<Metric<string>> = [
  runs,
  fireLag,
  callbackDuration,
  retries,
  reconcileRepairs,
  scheduleErrors,
];

/** The statuses an attempt or a skip ends in (`running` is where a run starts, never an outcome). */
const OUTCOME_STATUSES = RUN_STATUSES.filter((status) => status !== 'running');
for (const trigger of RUN_TRIGGERS) {
  for (const status of OUTCOME_STATUSES) runs.inc({ status, trigger }, 0);
  retries.inc({ trigger }, 0);
}
for (const kind of REPAIR_KINDS) reconcileRepairs.inc({ kind }, 0);

/** Counts what one reconcile pass repaired, by the kind of difference. */
export function countReconcileRepairs(kind: RepairKind, count = 1): void {
  if (count > 0) reconcileRepairs.inc({ kind }, count);
}

function observeAttempt(
  trigger: string,
  attempt: number,
  scheduledFor: number,
  deliveryStartedAt: number,
  durationMs: number,
) {
  callbackDuration.observe(durationMs / 1000);
  // A retry's lateness is the backoff, not lag; a replay's instant is the original occurrence's.
  if (attempt === 1 && trigger !== 'replay') fireLag.observe(Math.max(0, deliveryStartedAt - scheduledFor) / 1000);
}

export function observeFireResult(result: FireResult): void {
  if (result.outcome === 'delivered') {
    runs.inc({ status: result.status, trigger: result.trigger });
    observeAttempt(result.trigger, result.attempt, result.scheduledFor, result.deliveryStartedAt, result.durationMs);
  } else if (result.outcome === 'skipped') {
    runs.inc({ status: 'skipped', trigger: result.trigger ?? 'schedule' });
  }
}

export function observeRetry(error: RetryLaterError): void {
  const attempted = error.attempted;
  if (!attempted) return;
  runs.inc({ status: 'retrying', trigger: attempted.trigger });
  retries.inc({ trigger: attempted.trigger });
  observeAttempt(
    attempted.trigger,
    attempted.attempt,
    attempted.scheduledFor,
    attempted.deliveryStartedAt,
    attempted.durationMs,
  );
}

/** Observes every outcome of a `fire` worker through its events. */
export function observeWorker(worker: Worker<FireJobData>): void {
  worker.on('completed', (_job, result: FireResult) => observeFireResult(result));
  worker.on('failed', (_job, error) => {
    if (error instanceof RetryLaterError) observeRetry(error);
  });
}

/**
 * Counts and logs every next instant BullMQ's repeat strategy could not compute in this process
 * (when a worker takes an occurrence, and on each reconciler pass that registers the job again).
 * Returns the function that stops it.
 */
export function observeScheduleErrors(logger: Logger): () => void {
  return onScheduleError((error) => {
    scheduleErrors.inc();
    logger.error(
      { err: error, cron: error.cron, timezone: error.timezone },
      'could not compute the next occurrence of a cron schedule; the reconciler registers its job again each pass',
    );
  });
}

export interface WorkerMetricsSource {
  pool: PoolStats;
  queue: QueueStats;
  isReady(): Promise<boolean>;
  /** Open alerts by reason (`tickwork_alerts_open`); absent: not exported. */
  openAlerts?: () => Promise<Record<string, number>>;
}

/** The registry a worker serves: process metrics, the shared counters, this worker's gauges. */
export function createWorkerRegistry(source: WorkerMetricsSource): Registry {
  const registry = createRegistry();
  for (const metric of PROCESS_METRICS) registry.registerMetric(metric);
  registerPoolGauges(registry, source.pool);
  registerReadyGauge(registry, source.isReady);
  registerQueueGauges(registry, source.queue);
  if (source.openAlerts) registerAlertGauge(registry, source.openAlerts);
  return registry;
}
