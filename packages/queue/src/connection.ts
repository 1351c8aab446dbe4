/**
 * Every Redis connection a Tickwork process opens is made here: its options (how it behaves while
 * Redis is away) and its name (`CLIENT LIST` says whose each connection is). A worker makes one
 * {@link RedisConnections} and builds every BullMQ Queue and Worker on it.
 */
import { Queue, Worker, type Processor, type QueueOptions, type WorkerOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { withTimeout } from '@tickwork/core';

/**
 * How a connection behaves while Redis is away:
 * - `producer` (the api's queue, probes, gauges, the reconciler): fail fast, so a request answers
 *   503 and a probe answers false instead of hanging;
 * - `worker` (BullMQ workers and what shares their connection): retry for ever, as BullMQ requires.
 */
export type RedisRole = 'producer' | 'worker';

/** ioredis options from a URL, for a connection of the given role. */
export function redisOptionsFrom(url: string, role: RedisRole): RedisOptions {
  const parsed = new URL(url);
  const options: RedisOptions = {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: Number(parsed.port || 6379),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.pathname.length > 1 ? { db: Number(parsed.pathname.slice(1)) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(100 * 2 ** times, 2_000),
  };
  if (role === 'producer') {
    options.maxRetriesPerRequest = 1;
    options.enableOfflineQueue = false;
  } else {
    options.maxRetriesPerRequest = null;
  }
  return options;
}

/**
 * Opens a connection of the given role, named `name` in `CLIENT LIST`. Connection errors surface
 * through the commands that meet them; the listener keeps them off the process.
 */
export function openRedis(url: string, role: RedisRole, name: string, extra: RedisOptions = {}): Redis {
  const redis = new Redis({ ...redisOptionsFrom(url, role), connectionName: name, ...extra });
  redis.on('error', () => {});
  return redis;
}

/**
 * Closes a connection: QUIT when Redis answers within `waitMs`, else the socket is dropped (with
 * Redis away QUIT waits for ever on a retrying connection, and fails at once on a fail-fast one).
 */
export async function closeRedis(redis: Redis, waitMs = 1_000): Promise<void> {
  if (redis.status === 'ready') await withTimeout(redis.quit(), waitMs).catch(() => {});
  redis.disconnect();
}

export interface RedisConnectionsOptions {
  redisUrl: string;
  prefix: string;
  /** Who holds the connections, e.g. `tickwork-worker:<host>:<pid>`: each connection's name starts with it. */
  name: string;
}

/**
 * The connections of one process, shared by every BullMQ Queue and Worker it builds. BullMQ shares
 * a connection it is given and never closes it; a Worker still makes one blocking connection of its
 * own (for `BZPOPMIN`, which no other command may wait behind), named by BullMQ after its queue.
 */
export interface RedisConnections {
  /** Retrying (`worker` role): every Queue's and Worker's commands. */
  readonly shared: Redis;
  /** Fail-fast (`producer` role): probes, gauges and the reconciler, which must not wait out an outage. */
  readonly failFast: Redis;
  /** A BullMQ Queue on the shared connection. */
  queue<Data = unknown>(name: string, options?: Omit<QueueOptions, 'connection' | 'prefix'>): Queue<Data>;
  /** A BullMQ Worker on the shared connection (and its own blocking one). */
  worker<Data = unknown, Result = unknown>(
    name: string,
    processor: Processor<Data, Result>,
    options?: Omit<WorkerOptions, 'connection' | 'prefix'>,
  ): Worker<Data, Result>;
  /** Closes the shared connections; close the Queues and Workers built on them first. */
  close(waitMs?: number): Promise<void>;
}

export function createRedisConnections(options: RedisConnectionsOptions): RedisConnections {
  const shared = openRedis(options.redisUrl, 'worker', `${options.name}:shared`);
  const failFast = openRedis(options.redisUrl, 'producer', `${options.name}:fail-fast`);
  const { prefix } = options;
  return {
    shared,
    failFast,
    queue: (name, queueOptions) => new Queue(name, { ...queueOptions, connection: shared, prefix }),
    worker: (name, processor, workerOptions) =>
      new Worker(name, processor, { ...workerOptions, connection: shared, prefix }),
    async close(waitMs) {
      await Promise.all([closeRedis(shared, waitMs), closeRedis(failFast, waitMs)]);
    },
  };
}
