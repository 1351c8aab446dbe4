/**
 * The worker as a unit a process (or a test) can start and stop: BullMQ Worker on `fire`,
 * with lock settings that survive the longest callback and recover a dead worker's occurrence.
 */
import { hostname } from 'node:os';
import { Queue, Worker, type ConnectionOptions, type Job as BullJob } from 'bullmq';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import {
  FIRE_QUEUE,
  MAX_TIMEOUT_MS,
  cronRepeatStrategy,
  occurrenceOf,
  type Config,
  type FireJobData,
} from '@tickwork/core';
import { abandonRun, createDatabase, findJobById, isConnectionError, type Database } from '@tickwork/db';
import { redisOptionsFrom } from '@tickwork/queue';
import { createDispatchers } from './deliver.ts';
import { RetryLaterError, fireOccurrence, tickworkBackoff, type FireContext } from './fire.ts';
import { startMaintenance, type MaintenanceTask } from './maintenance.ts';
import { pruneTask } from './prune.ts';
import { watchPostgres } from './readiness.ts';
import { createReconciler, type RepairKind } from './reconcile.ts';

/**
 * BullMQ renews a job's lock every `lockDuration / 2` while the processor runs, so a slow
 * callback (up to MAX_TIMEOUT_MS) never loses its lock; only a dead or frozen worker does, and
 * its occurrence is picked up again within `lockDuration + stalledInterval` (≤ 45 s): the lock
 * runs out at most 30 s after the last renewal, and the next stalled check (every 15 s, by any
 * worker) that finds it gone moves the occurrence back to wait. The chaos suite measures it.
 */
export const LOCK_DURATION_MS = 30_000;
export const STALLED_INTERVAL_MS = 15_000;
export const MAX_STALLED_COUNT = 10;

export type WorkerConfig = Pick<
  Config,
  | 'databaseUrl'
  | 'databasePoolMax'
  | 'redisUrl'
  | 'bullmqPrefix'
  | 'workerConcurrency'
  | 'callbackAllowPrivate'
  | 'callbackAllowedHosts'
  | 'secretKey'
  | 'shutdownGraceMs'
  | 'reconcileIntervalMs'
  | 'runRetentionDays'
>;

/** Hooks for observers (metrics) of what the worker does besides firing. */
export interface WorkerHooks {
  /** A reconcile pass repaired `count` things of one kind. */
  onReconcileRepair?: (kind: RepairKind, count: number) => void;
}

/**
 * The delay before BullMQ runs an occurrence again after a failure that is not the callback's
 * (Postgres away, a crash): 1 s doubling to 30 s, so 50 attempts outlast a long outage.
 */
export function infrastructureBackoff(attemptsMade: number): number {
  return Math.min(1_000 * 2 ** Math.max(0, attemptsMade - 1), 30_000);
}

/**
 * BullMQ gave up on an occurrence for a reason of its own (stalled too often, attempts used up by
 * failures that were not the callback's): its run must not stay `running`.
 */
async function abandonOccurrence(db: Kysely<Database>, bullJob: BullJob<FireJobData>, reason: string): Promise<boolean> {
  const { jobId, runId } = bullJob.data;
  if (runId) return abandonRun(db, { runId }, reason);
  const job = await findJobById(db, jobId);
  if (!job) return false;
  const at = (job.schedule as { at?: string }).at;
  const occurrence = occurrenceOf(bullJob.id ?? '', at ? Date.parse(at) : bullJob.timestamp + (bullJob.opts.delay ?? 0));
  return abandonRun(db, { jobId, scheduledFor: new Date(occurrence.scheduledFor), trigger: occurrence.trigger }, reason);
}

export interface TickworkWorker {
  worker: Worker<FireJobData>;
  workerId: string;
  /** Stops taking occurrences, lets in-flight ones finish within the grace period, closes. */
  close(): Promise<void>;
  isReady(): Promise<{ postgres: boolean; redis: boolean }>;
}

export async function startWorker(config: WorkerConfig, logger: Logger, hooks: WorkerHooks = {}): Promise<TickworkWorker> {
  const workerId = `${hostname()}:${process.pid}`;
  const database = createDatabase({
    url: config.databaseUrl,
    poolMax: Math.max(config.databasePoolMax, config.workerConcurrency + 2),
    applicationName: 'tickwork-worker',
  });
  const policy = { allowPrivate: config.callbackAllowPrivate, allowedHosts: config.callbackAllowedHosts };
  const dispatchers = createDispatchers(policy);
  const abort = new AbortController();
  const connection = redisOptionsFrom(config.redisUrl, 'worker') as ConnectionOptions;
  // For removing the scheduler of a job that completed (endAt passed, maxRuns reached).
  const fireQueue = new Queue(FIRE_QUEUE, { connection, prefix: config.bullmqPrefix });
  fireQueue.on('error', (error) => logger.warn({ err: error }, 'fire queue error'));
  const ctx: FireContext = {
    db: database.db,
    logger,
    workerId,
    secretKey: config.secretKey,
    policy,
    dispatchers,
    signal: abort.signal,
    queue: fireQueue,
  };
  const worker = new Worker<FireJobData>(FIRE_QUEUE, (job, token) => fireOccurrence(ctx, job, token), {
    connection,
    prefix: config.bullmqPrefix,
    concurrency: config.workerConcurrency,
    lockDuration: LOCK_DURATION_MS,
    stalledInterval: STALLED_INTERVAL_MS,
    maxStalledCount: MAX_STALLED_COUNT,
    settings: {
      backoffStrategy: (attemptsMade: number, type: string | undefined, error?: Error) =>
        error instanceof RetryLaterError ? tickworkBackoff(attemptsMade, type, error) : infrastructureBackoff(attemptsMade),
      repeatStrategy: cronRepeatStrategy,
    },
    autorun: true,
  });
  worker.on('error', (error) => logger.error({ err: error }, 'worker error'));
  worker.on('failed', (job, error) => {
    if (!job || error?.name === 'RetryLaterError') return;
    if (isConnectionError(error)) postgres.checkNow();
    const final = error?.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    logger.warn({ err: error, bullJobId: job.id, final }, 'occurrence failed');
    if (!final) return;
    abandonOccurrence(database.db, job, `abandoned: ${error?.message ?? 'failed'}`).catch((cause: unknown) =>
      logger.error({ err: cause, bullJobId: job.id }, 'could not mark an abandoned occurrence dead'),
    );
  });
  await worker.waitUntilReady();
  const postgres = watchPostgres({
    check: () => database.pool.query('select 1'),
    pause: () => worker.pause(true),
    resume: () => worker.resume(),
    logger,
  });

  const reconciler = createReconciler({
    db: database.db,
    redisUrl: config.redisUrl,
    prefix: config.bullmqPrefix,
    logger: logger.child({ task: 'reconcile' }),
    ...(hooks.onReconcileRepair ? { onRepair: hooks.onReconcileRepair } : {}),
  });
  const tasks: MaintenanceTask[] = [
    { name: 'reconcile', everyMs: config.reconcileIntervalMs, run: () => reconciler.run() },
    pruneTask({ db: database.db, retentionDays: config.runRetentionDays }),
  ];
  // After a Redis data loss the reconcile scheduler itself is gone: re-registering it at least
  // once per interval brings the first repair within two intervals of the loss.
  const maintenance = await startMaintenance({
    redisUrl: config.redisUrl,
    prefix: config.bullmqPrefix,
    logger,
    tasks,
    refreshMs: Math.min(60_000, config.reconcileIntervalMs),
  });
  logger.info({ workerId, concurrency: config.workerConcurrency, maxTimeoutMs: MAX_TIMEOUT_MS }, 'worker started');

  let closing: Promise<void> | undefined;
  return {
    worker,
    workerId,
    close() {
      closing ??= (async () => {
        const grace = setTimeout(() => abort.abort(new Error('shutdown grace period over')), config.shutdownGraceMs);
        postgres.stop();
        try {
          await maintenance.close();
          await reconciler.close();
          await worker.close();
          await fireQueue.close();
        } finally {
          clearTimeout(grace);
          await Promise.allSettled([dispatchers.guarded.close(), dispatchers.allowListed.close()]);
          await database.close();
        }
      })();
      return closing;
    },
    async isReady() {
      const [postgres, redis] = await Promise.all([
        database.pool
          .query('select 1')
          .then(() => true)
          .catch(() => false),
        worker
          .getBackend()
          .client.then((client) => client.get('tickwork:ping'))
          .then(() => true)
          .catch(() => false),
      ]);
      return { postgres, redis };
    },
  };
}
