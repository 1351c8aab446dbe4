/**
 * The worker as a unit a process (or a test) can start and stop: BullMQ Worker on `fire`,
 * with lock settings that survive the longest callback and recover a dead worker's occurrence.
 */
import { hostname } from 'node:os';
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import type { Logger } from 'pino';
import { FIRE_QUEUE, MAX_TIMEOUT_MS, cronRepeatStrategy, type Config, type FireJobData } from '@tickwork/core';
import { createDatabase } from '@tickwork/db';
import { redisOptionsFrom } from '@tickwork/queue';
import { createDispatchers } from './deliver.ts';
import { fireOccurrence, tickworkBackoff, type FireContext } from './fire.ts';
import { startMaintenance, type MaintenanceTask } from './maintenance.ts';
import { pruneTask } from './prune.ts';

/**
 * BullMQ renews a job's lock every `lockDuration / 2` while the processor runs, so a slow
 * callback (up to MAX_TIMEOUT_MS) never loses its lock; only a dead or frozen worker does, and
 * its occurrence is picked up again within `lockDuration + stalledInterval` (≤ 45 s).
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
  | 'runRetentionDays'
>;

export interface TickworkWorker {
  worker: Worker<FireJobData>;
  workerId: string;
  /** Stops taking occurrences, lets in-flight ones finish within the grace period, closes. */
  close(): Promise<void>;
  isReady(): Promise<{ postgres: boolean; redis: boolean }>;
}

export async function startWorker(config: WorkerConfig, logger: Logger): Promise<TickworkWorker> {
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
    settings: { backoffStrategy: tickworkBackoff, repeatStrategy: cronRepeatStrategy },
    autorun: true,
  });
  worker.on('error', (error) => logger.error({ err: error }, 'worker error'));
  worker.on('failed', (job, error) => {
    if (error?.name !== 'RetryLaterError') logger.warn({ err: error, bullJobId: job?.id }, 'occurrence failed');
  });
  await worker.waitUntilReady();
  // Housekeeping passes (reconcile, prune, …) add themselves to this list.
  const tasks: MaintenanceTask[] = [pruneTask({ db: database.db, retentionDays: config.runRetentionDays })];
  const maintenance = await startMaintenance({ redisUrl: config.redisUrl, prefix: config.bullmqPrefix, logger, tasks });
  logger.info({ workerId, concurrency: config.workerConcurrency, maxTimeoutMs: MAX_TIMEOUT_MS }, 'worker started');

  let closing: Promise<void> | undefined;
  return {
    worker,
    workerId,
    close() {
      closing ??= (async () => {
        const grace = setTimeout(() => abort.abort(new Error('shutdown grace period over')), config.shutdownGraceMs);
        try {
          await maintenance.close();
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
