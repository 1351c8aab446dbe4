/**
 * The worker as a unit a process (or a test) can start and stop: BullMQ Worker on `fire`,
 * with lock settings that survive the longest callback and recover a dead worker's occurrence.
 */
import { hostname } from 'node:os';
import type { Worker, Job as BullJob } from 'bullmq';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { MAX_TIMEOUT_MS, secretKeysOf, succeedsWithin, type Config } from '@tickwork/core';
import {
  abandonRun,
  countOpenAlerts,
  createDatabase,
  findJobById,
  isConnectionError,
  type Database,
} from '@tickwork/db';
import {
  FINISHED_RETENTION,
  FireQueue,
  createRedisConnections,
  fireQueueStatsOf,
  isCluster,
  maintenanceQueueNameOf,
  redisTargetOf,
  warnUnlessNoevictionOn,
  cronRepeatStrategy,
  occurrenceOf,
  type FireJobData,
} from '@tickwork/queue';
import { createDispatchers } from './deliver.ts';
import { RetryLaterError, fireOccurrence, tickworkBackoff, type FireContext } from './fire/index.ts';
import { startAlertWatch } from './alerts.ts';
import { startMaintenance, type MaintenanceTask } from './maintenance.ts';
import { countReconcileRepairs, createWorkerRegistry, observeScheduleErrors, observeWorker } from './metrics.ts';
import { pruneTask } from './prune.ts';
import { watchPostgres } from './readiness.ts';
import { createReconciler } from './reconcile.ts';
import { startWaker } from './waker.ts';
import { resumeDueTask } from './resume-due.ts';

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
/**
 * How long the waker trusts a Worker's "taking or finishing a job" (its fetch promotes the due jobs
 * itself, so no wake-up is sent meanwhile); past it, a wake-up goes as if the Worker waited.
 */
const FETCH_STALE_MS = 20;
/** How long a shutdown waits for Redis connections to close once nothing is in flight. */
export const REDIS_CLOSE_MS = 3_000;

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
  | 'secretKeyPrevious'
  | 'shutdownGraceMs'
  | 'reconcileIntervalMs'
  | 'reconcileSweepIntervalMs'
  | 'runRetentionDays'
> &
  /** Optional so a caller that predates them gets one Redis, one fire queue, and an alert watch every 10 s. */
  Partial<Pick<Config, 'redisClusterNodes' | 'fireQueueShards' | 'fireQueueConsume' | 'alertWatchIntervalMs'>>;

export interface TickworkWorker {
  /** The first of {@link workers}. */
  readonly worker: Worker<FireJobData>;
  /** One BullMQ Worker per fire queue consumed (with one shard: one); a stuck one is replaced in place. */
  workers: Worker<FireJobData>[];
  /** How many stuck Workers were replaced so far. */
  readonly replacements: number;
  workerId: string;
  /** What /metrics on the worker's port serves. */
  metrics: Registry;
  /** Stops taking occurrences, lets in-flight ones finish within the grace period, closes. */
  close(): Promise<void>;
  /** Postgres and Redis answer, and the worker is not shutting down. */
  isReady(): Promise<{ postgres: boolean; redis: boolean; accepting: boolean }>;
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
async function abandonOccurrence(
  db: Kysely<Database>,
  bullJob: BullJob<FireJobData>,
  reason: string,
): Promise<boolean> {
  const { jobId, runId } = bullJob.data;
  if (runId) return abandonRun(db, { runId }, reason);
  const job = await findJobById(db, jobId);
  if (!job) return false;
  const at = (job.schedule as { at?: string }).at;
  const occurrence = occurrenceOf(
    bullJob.id ?? '',
    at ? Date.parse(at) : bullJob.timestamp + (bullJob.opts.delay ?? 0),
  );
  return abandonRun(
    db,
    { jobId, scheduledFor: new Date(occurrence.scheduledFor), trigger: occurrence.trigger },
    reason,
  );
}

export async function startWorker(config: WorkerConfig, logger: Logger): Promise<TickworkWorker> {
  const workerId = `${hostname()}:${process.pid}`;
  // Every Redis connection of the worker: the Workers' and Queues' shared one, a fail-fast one,
  // and the blocking connection BullMQ makes for each Worker.
  const redis = createRedisConnections({
    redis: redisTargetOf(config),
    prefix: config.bullmqPrefix,
    name: `tickwork-worker:${workerId}`,
    autoPipelining: process.env.TICKWORK_REDIS_AUTOPIPELINE === 'on',
  });
  const shards = config.fireQueueShards ?? 1;
  // The fire path's handle (skipped slots, removing a completed job's scheduler): on the shared,
  // retrying connection, like the Worker's own commands.
  const fireQueue = new FireQueue({ connection: redis.shared, prefix: config.bullmqPrefix, shards });
  // Every worker consumes its shards (all, unless FIRE_QUEUE_CONSUME names some) and the fire
  // queues of an earlier shard count that still hold jobs, until the reconciler has emptied them.
  await fireQueue
    .announce({ current: true })
    .catch((error: unknown) => logger.warn({ err: error }, 'could not record the fire queues in Redis yet'));
  const consumed = [
    ...(config.fireQueueConsume ?? fireQueue.shards.map((_, i) => i)).map((i) => fireQueue.shards[i]!),
    ...(await fireQueue.otherShards().catch(() => [])),
  ];
  const perQueue = Math.max(1, Math.ceil(config.workerConcurrency / consumed.length));
  const database = createDatabase({
    url: config.databaseUrl,
    poolMax: Math.max(config.databasePoolMax, perQueue * consumed.length + 2),
    applicationName: 'tickwork-worker',
  });
  const policy = { allowPrivate: config.callbackAllowPrivate, allowedHosts: config.callbackAllowedHosts };
  const dispatchers = createDispatchers(policy);
  const abort = new AbortController();
  const ctx: FireContext = {
    db: database.db,
    logger,
    workerId,
    secretKeys: secretKeysOf(config),
    policy,
    dispatchers,
    signal: abort.signal,
    queue: fireQueue.queue,
    queues: async () => (await fireQueue.knownShards()).map((shard) => shard.queue),
  };
  // Occurrences being processed, so a shutdown knows when nothing is left to finish.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const track = async <T>(work: Promise<T>): Promise<T> => {
    inFlight += 1;
    try {
      return await work;
    } finally {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    }
  };
  // Each queue's occurrences are decided with that queue at hand (its schedulers, its pending slots).
  // Occurrences in flight per queue consumed: its waker nudges Redis only while its Worker has a free slot.
  const busy = new Map<string, number>();
  // Per queue consumed: since when its Worker is taking or finishing a job (undefined: it waits in
  // its blocking fetch), from the Worker's own events. A finished processor starts BullMQ's
  // completing call, which fetches the next due job itself; `completed`/`failed` end it, `active`
  // (a job taken) and `drained` (nothing left: the blocking wait follows) say which way it went.
  const fetchingSince = new Map<string, number | undefined>();
  const trackOn = async <T>(name: string, work: Promise<T>): Promise<T> => {
    busy.set(name, (busy.get(name) ?? 0) + 1);
    try {
      return await track(work);
    } finally {
      busy.set(name, (busy.get(name) ?? 1) - 1);
      fetchingSince.set(name, Date.now());
    }
  };
  const consume = (shard: (typeof consumed)[number]) => {
    const shardCtx: FireContext = { ...ctx, queue: shard.queue };
    const fire = (job: BullJob<FireJobData>, token?: string) =>
      trackOn(shard.name, fireOccurrence(shardCtx, job, token));
    return redis.worker<FireJobData>(shard.name, fire, {
      concurrency: perQueue,
      lockDuration: LOCK_DURATION_MS,
      stalledInterval: STALLED_INTERVAL_MS,
      maxStalledCount: MAX_STALLED_COUNT,
      ...FINISHED_RETENTION,
      settings: {
        backoffStrategy: (attemptsMade: number, type: string | undefined, error?: Error) =>
          error instanceof RetryLaterError
            ? tickworkBackoff(attemptsMade, type, error)
            : infrastructureBackoff(attemptsMade),
        repeatStrategy: cronRepeatStrategy,
      },
      autorun: true,
    });
  };
  const workers = consumed.map(consume);
  for (const each of workers) observe(each);
  function observe(worker: Worker<FireJobData>) {
    worker.on('error', (error) => logger.error({ err: error }, 'worker error'));
    const fetching = () => fetchingSince.set(worker.name, Date.now());
    const waiting = () => fetchingSince.set(worker.name, undefined);
    worker.on('active', fetching);
    worker.on('drained', waiting);
    worker.on('completed', waiting);
    worker.on('failed', (job, error) => {
      waiting();
      if (!job || error instanceof RetryLaterError) return;
      if (isConnectionError(error)) postgres.checkNow();
      const final = error?.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
      // Postgres or Redis failed mid-occurrence: BullMQ runs it again, and the run keeps its id.
      logger.warn(
        {
          err: error,
          jobId: job.data.jobId,
          runId: job.data.runId,
          attempt: job.attemptsMade,
          bullJobId: job.id,
          final,
        },
        final ? 'occurrence failed for good' : 'occurrence failed; BullMQ will run it again',
      );
      if (!final) return;
      abandonOccurrence(database.db, job, `abandoned: ${error?.message ?? 'failed'}`).catch((cause: unknown) =>
        logger.error({ err: cause, bullJobId: job.id }, 'could not mark an abandoned occurrence dead'),
      );
    });
    observeWorker(worker);
  }
  // Workers replaced by the watchdog below, still closing (in the background: a stuck one may never finish).
  const retired: Promise<void>[] = [];
  let replacements = 0;
  let closing: Promise<void> | undefined;
  // A shard whose earliest delayed occurrence stays overdue while its Worker has free slots has a
  // Worker that no longer fetches (seen after a Redis Cluster failover): it is replaced by a new
  // Worker with the same options and observers, through BullMQ's public API only.
  const replace = (i: number, overdueMs: number) => {
    const stuck = workers[i]!;
    if (closing || stuck.isPaused()) return;
    logger.warn(
      { queue: stuck.name, overdueMs, running: stuck.isRunning() },
      "the queue's earliest delayed occurrence stays overdue while its Worker has free slots; starting a new Worker",
    );
    const fresh = consume(consumed[i]!);
    observe(fresh);
    workers[i] = fresh;
    replacements += 1;
    retired.push(
      stuck.close().catch((error: unknown) => logger.warn({ err: error }, 'a replaced Worker did not close cleanly')),
    );
  };
  // Redis times out a Worker's blocked wait only when its event loop wakes (hz 10: every 100 ms):
  // woken at each due instant of every queue consumed instead (waker.ts), one waker per queue (on
  // a Cluster its wake goes to the master holding that queue). The same reads watch for a stuck Worker.
  const wakers = consumed.map((shard, i) =>
    startWaker({
      queue: shard,
      redis: redis.shared,
      hasFreeSlot: () => (busy.get(shard.name) ?? 0) < perQueue,
      // A state older than FETCH_STALE_MS counts as waiting: a fetch that ended with no event of
      // its own (a job moved back to delayed, a fetch that found the queue still drained).
      isWaiting: () => {
        const since = fetchingSince.get(shard.name);
        return since === undefined || Date.now() - since > FETCH_STALE_MS;
      },
      nudge: process.env.TICKWORK_WAKE !== 'off',
      onStuck: (overdueMs) => replace(i, overdueMs),
    }),
  );
  const stopObservingScheduleErrors = observeScheduleErrors(logger);
  await Promise.all(workers.map((each) => each.waitUntilReady()));
  // Probes, the queue gauges and the reconciler, on the fail-fast connection: a scrape or a pass
  // while Redis is away fails at once instead of queueing behind the retrying connection.
  const probeQueue = new FireQueue({ connection: redis.failFast, prefix: config.bullmqPrefix, shards });
  void warnUnlessNoevictionOn(redis.shared, logger);
  const postgres = watchPostgres({
    check: () => database.pool.query('select 1'),
    pause: () => Promise.all(workers.map((each) => each.pause(true))).then(() => {}),
    resume: () => {
      for (const each of workers) each.resume();
    },
    logger,
  });
  const reconciler = createReconciler({
    db: database.db,
    fireQueue: probeQueue,
    // Ten passes: a rolling restart with a new FIRE_QUEUE_SHARDS is over by then.
    retireAfterMs: 10 * config.reconcileIntervalMs,
    logger: logger.child({ task: 'reconcile' }),
    sweepIntervalMs: config.reconcileSweepIntervalMs,
    onRepair: countReconcileRepairs,
  });
  const tasks: MaintenanceTask[] = [
    { name: 'reconcile', everyMs: config.reconcileIntervalMs, run: () => reconciler.run() },
    pruneTask({ db: database.db, retentionDays: config.runRetentionDays }),
    resumeDueTask({ db: database.db, fireQueue }),
  ];
  // After a Redis data loss the reconcile scheduler itself is gone: re-registering it at least
  // once per interval brings the first repair within two intervals of the loss.
  const maintenance = await startMaintenance({
    redis,
    queueName: maintenanceQueueNameOf({ prefix: config.bullmqPrefix, cluster: isCluster(redis.shared) }),
    logger,
    tasks,
    refreshMs: Math.min(60_000, config.reconcileIntervalMs),
  });
  // Postgres only: it sees occurrences that never fired, whatever became of Redis (apis run it too).
  const alertWatch = startAlertWatch({
    db: database.db,
    logger: logger.child({ task: 'alert-watch' }),
    secretKeys: secretKeysOf(config),
    policy,
    dispatchers,
    intervalMs: config.alertWatchIntervalMs ?? 10_000,
  });
  logger.info(
    {
      workerId,
      concurrency: perQueue * consumed.length,
      queues: consumed.map((shard) => shard.name),
      maxTimeoutMs: MAX_TIMEOUT_MS,
    },
    'worker started',
  );

  // Each part answers within a second, so a probe or a scrape never hangs on a dead dependency.
  const isReady = async () => {
    const [postgresAnswers, redisAnswers] = await Promise.all([
      succeedsWithin(database.pool.query('select 1'), 1_000),
      succeedsWithin(probeQueue.ping(), 1_000),
    ]);
    return { postgres: postgresAnswers, redis: redisAnswers, accepting: closing === undefined };
  };
  const metrics = createWorkerRegistry({
    pool: database.pool,
    queue: fireQueueStatsOf(probeQueue),
    isReady: async () => Object.values(await isReady()).every(Boolean),
    openAlerts: () => countOpenAlerts(database.db),
  });
  return {
    get worker() {
      return workers[0]!;
    },
    workers,
    get replacements() {
      return replacements;
    },
    workerId,
    metrics,
    isReady,
    close() {
      closing ??= (async () => {
        // Past the grace period in-flight callbacks are aborted: each is recorded as a failed
        // attempt and retried later (same run), so nothing is lost, only delayed.
        const grace = setTimeout(() => abort.abort(new Error('shutdown grace period over')), config.shutdownGraceMs);
        let giveUp: NodeJS.Timeout | undefined;
        postgres.stop();
        await alertWatch.close();
        for (const waker of wakers) waker.stop();
        try {
          const closed = Promise.all([maintenance.close(), ...workers.map((each) => each.close()), ...retired])
            .then(() => Promise.all([fireQueue.close(), probeQueue.close()]))
            .then(() => true);
          // BullMQ's close ends with a QUIT that waits for ever while Redis is away: once nothing
          // is in flight, the connections get a few seconds, then the worker stops without them.
          const idle = (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (drained = resolve))).then(
            () =>
              new Promise<boolean>((resolve) => {
                giveUp = setTimeout(() => resolve(false), REDIS_CLOSE_MS);
              }),
          );
          if (!(await Promise.race([closed, idle]))) {
            logger.warn({ waitedMs: REDIS_CLOSE_MS }, 'Redis did not answer while closing; stopping without it');
          }
        } finally {
          stopObservingScheduleErrors();
          clearTimeout(grace);
          clearTimeout(giveUp);
          await Promise.allSettled([dispatchers.guarded.close(), dispatchers.allowListed.close(), redis.close()]);
          await database.close();
        }
      })();
      return closing;
    },
  };
}
