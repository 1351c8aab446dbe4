import { Queue, type JobState, type JobsOptions } from 'bullmq';
import { TickworkError, type Job, withTimeout } from '@tickwork/core';
import {
  FIRE_QUEUE,
  cronRepeatStrategy,
  onceJobIdOf,
  schedulerIdOf,
  registrationOf,
  type FireJobData,
  type Registration,
} from './catalog.ts';
import { closeRedis, clusterNodesOf, openRedis, type RedisClient, type RedisTarget } from './connection.ts';
import type { RedisQueue } from './layout.ts';
import { fireQueueNamesOf, shardIndexOf } from './shards.ts';

/**
 * Options of every occurrence. Retries are ours: the worker decides from the job's policy and
 * BullMQ re-runs the same BullMQ job (same id, so the same run and `webhook-id`), with the delay
 * the worker computed (the `tickwork` backoff strategy reads it off the error).
 *
 * Only what BullMQ cannot take from the Worker belongs here: Redis keeps these options twice per
 * schedule (the scheduler's template and its pending occurrence). Kept to 45 bytes of JSON, the
 * template stays under Redis's `hash-max-listpack-value` (64), so the scheduler's hash is a
 * compact listpack rather than a hashtable (312 B instead of 744 B at 100,000 schedules).
 */
export const OCCURRENCE_OPTIONS: JobsOptions = {
  attempts: 50,
  backoff: { type: 'tickwork' },
};

/**
 * How long finished occurrences stay in Redis (Bull Board shows them; Postgres keeps the runs).
 * Set on the Worker, which applies them to every job it completes or fails whose own options do
 * not say otherwise, rather than stored in each occurrence's options.
 */
export const FINISHED_RETENTION = {
  removeOnComplete: { age: 3_600, count: 1_000 },
  removeOnFail: { age: 7 * 86_400, count: 10_000 },
} as const satisfies Pick<JobsOptions, 'removeOnComplete' | 'removeOnFail'>;

export type FireQueueOptions = {
  prefix: string;
  /** How long a Redis call may take before it fails as `unavailable`. @defaultValue 2000 */
  timeoutMs?: number;
  /** FIRE_QUEUE_SHARDS: how many fire queues the jobs are split over. @defaultValue 1 */
  shards?: number;
} & (
  | {
      /** A fail-fast connection of the queue's own is opened to this Redis (and closed with it). */
      redisUrl: RedisTarget;
      /**
       * ioredis's `enableAutoPipelining` on that connection: the commands sent in one turn of the
       * event loop (the creates of concurrent requests) go in one socket write and one pipeline
       * instead of one each. A single Redis only: a Cluster's connection is left as it is.
       * @defaultValue false
       */
      autoPipelining?: boolean;
    }
  | {
      /** A connection to share (from {@link RedisConnections}); its owner closes it. */
      connection: RedisClient;
    }
);

/** One fire queue: a shard of the jobs (all of them when there is one). */
export interface FireShard extends RedisQueue {
  readonly name: string;
  readonly queue: Queue<FireJobData>;
}

/** How long the list of every fire queue Redis holds is kept before it is read again. */
const KNOWN_SHARDS_CACHE_MS = 10_000;

/**
 * A handle on the fire queues for everything but consuming them: registers and removes jobs'
 * schedules, queues runs, and (through `layout.ts`) reads what Redis holds. The api makes one on a
 * fail-fast connection of its own; the worker makes its handles on its shared connections.
 * Every call here fails as `unavailable` (503) once Redis has not answered for `timeoutMs`.
 *
 * With FIRE_QUEUE_SHARDS above 1 the jobs are split over that many queues, each job (every version
 * and occurrence of it) on one, chosen by its id (`shardIndexOf`). Redis keeps the names of every
 * fire queue ever in use (`<prefix>:tickwork:fire-queues`), so queues of an earlier shard count are
 * still consumed, reconciled and shown until the reconciler has moved their jobs and they are empty.
 */
export class FireQueue implements RedisQueue {
  /** The fire queues of the configured shard count, shard 0 first. */
  readonly shards: readonly FireShard[];
  /** Shard 0's queue (the only one with one shard). */
  readonly queue: Queue<FireJobData>;
  /** The connection the queues run on. */
  readonly redis: RedisClient;
  /** Tickwork's own keys under the prefix, beside the queues (locks, the list of fire queues). */
  readonly home: RedisQueue;
  readonly prefix: string;
  readonly timeoutMs: number;
  private readonly ownsConnection: boolean;
  private readonly others = new Map<string, FireShard>();
  private known: { at: number; shards: Promise<FireShard[]> } | undefined;

  constructor(options: FireQueueOptions) {
    this.timeoutMs = options.timeoutMs ?? 2_000;
    this.prefix = options.prefix;
    this.ownsConnection = 'redisUrl' in options;
    this.redis =
      'redisUrl' in options
        ? openRedis(
            options.redisUrl,
            'producer',
            'tickwork:fire-queue',
            options.autoPipelining && !clusterNodesOf(options.redisUrl) ? { enableAutoPipelining: true } : {},
          )
        : options.connection;
    const names = fireQueueNamesOf({
      prefix: options.prefix,
      shards: options.shards ?? 1,
      cluster: isCluster(this.redis),
    });
    this.shards = names.map((name) => this.shardNamed(name));
    this.queue = this.shards[0]!.queue;
    const prefix = options.prefix;
    this.home = { queue: { toKey: (type: string) => `${prefix}:${type}` }, redis: this.redis };
  }

  private shardNamed(name: string): FireShard {
    const queue = new Queue<FireJobData>(name, {
      connection: this.redis,
      prefix: this.prefix,
      settings: { repeatStrategy: cronRepeatStrategy },
    });
    // Connection errors surface through the calls below (as 503); keep them off the process.
    queue.on('error', () => {});
    return { name, queue, redis: this.redis };
  }

  /** The shard a job lives on. */
  shardOf(jobId: string): FireShard {
    return this.shards[shardIndexOf(jobId, this.shards.length)]!;
  }

  private get registryKey(): string {
    return this.home.queue.toKey('tickwork:fire-queues');
  }

  private get layoutKey(): string {
    return this.home.queue.toKey('tickwork:fire-layout');
  }

  /**
   * Records this shard count's queues in Redis, so every worker consumes them; `current` (a
   * worker starting) also makes this count the one the reconciler moves jobs to.
   */
  async announce(options: { current?: boolean } = {}): Promise<void> {
    const names = this.shards.map((shard) => shard.name);
    if (!names.includes(FIRE_QUEUE) && !isCluster(this.redis)) {
      // A deployment from before the shards kept its jobs in `fire`, which no list named.
      const keys = ['id', 'meta', 'repeat'].map((type) => `${this.prefix}:${FIRE_QUEUE}:${type}`);
      const held = await Promise.all(keys.map((key) => this.redis.exists(key)));
      if (held.some((count) => count > 0)) names.push(FIRE_QUEUE);
    }
    await this.redis.sadd(this.registryKey, ...names);
    if (options.current) await this.redis.set(this.layoutKey, this.shards.map((shard) => shard.name).join(','));
    this.known = undefined;
  }

  /** Whether the latest worker to start had this shard count (or none said). */
  async isCurrentLayout(): Promise<boolean> {
    const current = await this.redis.get(this.layoutKey);
    return current === null || current === this.shards.map((shard) => shard.name).join(',');
  }

  /** Forgets a fire queue of an earlier shard count once it is empty (the reconciler decides). */
  async retire(name: string): Promise<void> {
    if (this.shards.some((shard) => shard.name === name)) return;
    await this.redis.srem(this.registryKey, name);
    await this.redis.hdel(this.emptySinceKey, name);
    this.known = undefined;
  }

  private get emptySinceKey(): string {
    return this.home.queue.toKey('tickwork:fire-queues-empty-since');
  }

  /**
   * How long a fire queue of an earlier shard count has been seen empty (0: just now, or it holds
   * jobs again): the reconciler forgets one only once it stayed empty a while, so a process still
   * running with that count has been replaced by then.
   */
  async emptyFor(name: string, empty: boolean, now = Date.now()): Promise<number> {
    if (!empty) {
      await this.redis.hdel(this.emptySinceKey, name);
      return 0;
    }
    await this.redis.hsetnx(this.emptySinceKey, name, String(now));
    const since = Number(await this.redis.hget(this.emptySinceKey, name));
    return Number.isFinite(since) ? Math.max(0, now - since) : 0;
  }

  /**
   * Every fire queue Redis may hold jobs in: this shard count's, then those of earlier counts not
   * yet emptied (read from Redis at most every 10 s).
   */
  async knownShards(options: { fresh?: boolean } = {}): Promise<FireShard[]> {
    if (!options.fresh && this.known && Date.now() - this.known.at < KNOWN_SHARDS_CACHE_MS) return this.known.shards;
    const shards = (async () => {
      const names = (await this.redis.smembers(this.registryKey)).sort();
      const current = new Set(this.shards.map((shard) => shard.name));
      const others = names.filter((name) => !current.has(name) && name.startsWith(FIRE_QUEUE));
      return [
        ...this.shards,
        ...others.map((name) => {
          const shard = this.others.get(name) ?? this.shardNamed(name);
          this.others.set(name, shard);
          return shard;
        }),
      ];
    })();
    this.known = { at: Date.now(), shards };
    shards.catch(() => {
      if (this.known?.shards === shards) this.known = undefined;
    });
    return shards;
  }

  /** The fire queues of earlier shard counts still holding jobs (none when the count never changed). */
  async otherShards(): Promise<FireShard[]> {
    return (await this.knownShards()).slice(this.shards.length);
  }

  private async withTimeout<T>(what: string, work: Promise<T>): Promise<T> {
    try {
      return await withTimeout(work, this.timeoutMs, what);
    } catch (error) {
      throw new TickworkError('unavailable', 'The scheduler store (Redis) is not answering; nothing was changed.', {
        cause: error,
      });
    }
  }

  /** Registers a job as it stands now, on its shard; returns what was registered. */
  async register(job: Job, now = Date.now(), runCount = 0): Promise<Registration> {
    const registration = registrationOf(job, now, runCount);
    await this.withTimeout(
      'registering the job',
      applyRegistration(this.shardOf(job.id).queue, job, registration, now),
    );
    return registration;
  }

  /**
   * Removes every trace of one version of a job: its scheduler and its pending one-shot, on its
   * shard and on any fire queue of an earlier shard count it may not have left yet.
   */
  async unregister(jobId: string, version: number): Promise<void> {
    await this.withTimeout(
      'removing the job',
      (async () => {
        await removeRegistration(this.shardOf(jobId).queue, jobId, version);
        for (const shard of await this.otherShards()) await removeRegistration(shard.queue, jobId, version);
      })(),
    );
  }

  /**
   * Hands BullMQ a run the api has recorded itself (run now, replay): a plain job, so no
   * scheduler's next occurrence moves (BullMQ's `promote()` would shift the schedule).
   */
  async enqueueRun(data: Required<FireJobData>, bullJobId: string): Promise<void> {
    await this.withTimeout('queueing the run', addOccurrence(this.shardOf(data.jobId).queue, data, bullJobId));
  }

  async ping(): Promise<void> {
    await this.withTimeout(
      'pinging Redis',
      Promise.all(this.shards.map((shard) => shard.queue.waitUntilReady())).then(() => this.redis.ping()),
    );
  }

  /** Closes the queues, and the connection when it is the queue's own. */
  async close(): Promise<void> {
    await Promise.all([...this.shards, ...this.others.values()].map((shard) => shard.queue.close().catch(() => {})));
    if (this.ownsConnection) await closeRedis(this.redis);
  }
}

/**
 * The counts of every fire queue Redis holds, summed (the queue gauges and /metrics read them):
 * the same calls as one BullMQ queue's, so a single shard reads exactly as before.
 */
export function fireQueueStatsOf(fireQueue: FireQueue) {
  const sum = async <T>(each: (queue: Queue<FireJobData>) => Promise<T>) =>
    Promise.all((await fireQueue.knownShards()).map((shard) => each(shard.queue)));
  return {
    async getJobCounts(...states: string[]): Promise<Record<string, number>> {
      const total: Record<string, number> = {};
      for (const counts of await sum((queue) => queue.getJobCounts(...(states as JobState[])))) {
        for (const [state, count] of Object.entries(counts)) total[state] = (total[state] ?? 0) + count;
      }
      return total;
    },
    async getJobSchedulersCount(): Promise<number> {
      return (await sum((queue) => queue.getJobSchedulersCount())).reduce((a, b) => a + b, 0);
    },
  };
}

/** Whether a connection is to a Redis Cluster. */
export function isCluster(redis: RedisClient): boolean {
  return (redis as { isCluster?: boolean }).isCluster === true;
}

/** Adds an occurrence under its BullMQ id, due in `delayMs` (0: now). */
export async function addOccurrence(
  queue: Queue<FireJobData>,
  data: FireJobData,
  bullJobId: string,
  delayMs = 0,
): Promise<void> {
  await queue.add(FIRE_QUEUE, data, {
    ...OCCURRENCE_OPTIONS,
    jobId: bullJobId,
    ...(delayMs > 0 ? { delay: delayMs } : {}),
  });
}

/**
 * Closes a BullMQ queue. With Redis away QUIT cannot be sent on a fail-fast connection and
 * BullMQ rethrows (and its disconnect() then never settles): drop the socket instead, so a
 * process can shut down cleanly during a Redis outage.
 */
export async function closeQueue(queue: Queue): Promise<void> {
  try {
    await queue.close();
  } catch {
    (await queue.getBackend().client).disconnect();
  }
}

/** Writes a registration to BullMQ. Shared by the api and the reconciler. */
export async function applyRegistration(
  queue: Queue,
  job: Job,
  registration: Registration,
  now = Date.now(),
): Promise<void> {
  const data: FireJobData = { jobId: job.id, version: job.version };
  switch (registration.kind) {
    case 'none':
      return;
    case 'delayed':
      await addOccurrence(queue, data, registration.bullJobId, registration.runAt - now);
      return;
    case 'scheduler':
      await queue.upsertJobScheduler(registration.schedulerId, registration.repeat, {
        name: FIRE_QUEUE,
        data,
        opts: OCCURRENCE_OPTIONS,
      });
  }
}

export async function removeRegistration(queue: Queue, jobId: string, version: number): Promise<void> {
  await queue.removeJobScheduler(schedulerIdOf(jobId, version));
  const once = await queue.getJob(onceJobIdOf(jobId, version));
  if (once && ((await once.isDelayed()) || (await once.isWaiting()))) await once.remove();
}
