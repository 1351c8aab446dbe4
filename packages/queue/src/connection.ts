/**
 * Every Redis connection a Tickwork process opens is made here: its options (how it behaves while
 * Redis is away) and its name (`CLIENT LIST` says whose each connection is). A worker makes one
 * {@link RedisConnections} and builds every BullMQ Queue and Worker on it.
 */
import { Queue, Worker, type Processor, type QueueOptions, type WorkerOptions } from 'bullmq';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { withTimeout } from '@tickwork/core';

/**
 * How a connection behaves while Redis is away:
 * - `producer` (the api's queue, probes, gauges, the reconciler): fail fast, so a request answers
 *   503 and a probe answers false instead of hanging;
 * - `worker` (BullMQ workers and what shares their connection): retry for ever, as BullMQ requires.
 */
export type RedisRole = 'producer' | 'worker';

/**
 * ioredis options from a URL, for a connection of the given role. `rediss:` is TLS; its query's
 * `servername` names the host every node's certificate is checked against (and sent as SNI)
 * instead of the address dialled: for a cluster that announces its nodes by IP address while
 * its certificate names a host.
 */
export function redisOptionsFrom(url: string, role: RedisRole): RedisOptions {
  const parsed = new URL(url);
  const servername = parsed.searchParams.get('servername');
  const options: RedisOptions = {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: Number(parsed.port || 6379),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.pathname.length > 1 ? { db: Number(parsed.pathname.slice(1)) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: servername ? { servername } : {} } : {}),
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

/** A connection to one Redis, or to a Redis Cluster: every command Tickwork sends works on both. */
export type RedisClient = Redis | Cluster;

/**
 * Where Redis is: a URL (REDIS_URL), or a Cluster's seed nodes (REDIS_CLUSTER_NODES) with the
 * URL giving the credentials and TLS (`rediss:`) of every node (its host and port are not used).
 */
export type RedisTarget = string | { url: string; clusterNodes?: readonly string[] | undefined };

/** A target from the configuration: the Cluster when REDIS_CLUSTER_NODES is set, else REDIS_URL. */
export function redisTargetOf(config: {
  redisUrl: string;
  redisClusterNodes?: readonly string[] | undefined;
}): RedisTarget {
  return config.redisClusterNodes && config.redisClusterNodes.length > 0
    ? { url: config.redisUrl, clusterNodes: config.redisClusterNodes }
    : config.redisUrl;
}

/** The seed nodes of a Cluster target, or undefined for a single Redis. */
export function clusterNodesOf(target: RedisTarget): readonly string[] | undefined {
  return typeof target === 'string' || !target.clusterNodes?.length ? undefined : target.clusterNodes;
}

/** The URL of a target (a Cluster's: for credentials only). */
export const redisUrlOf = (target: RedisTarget): string => (typeof target === 'string' ? target : target.url);

/** `host:port` (or `[v6]:port`) as ioredis's node. */
function nodeOf(entry: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(entry.trim());
  if (!match) throw new RangeError(`a Redis Cluster node is host:port (got "${entry}")`);
  return { host: match[1]!, port: Number(match[2]) };
}

/**
 * ioredis Cluster options for a connection of the given role. The per-node options are the
 * URL's (credentials, TLS, timeouts, retries); the Cluster itself fails fast or queues like a
 * single connection of that role, retries while a failover moves slots (CLUSTERDOWN, TRYAGAIN,
 * MOVED), and refreshes its slot map every few seconds so a promoted replica is found quickly.
 */
export function clusterOptionsFrom(url: string, role: RedisRole, extra: RedisOptions = {}): ClusterOptions {
  const { host: _host, port: _port, db: _db, ...node } = redisOptionsFrom(url, role);
  // Each node's connection queues the few commands sent while it connects (ioredis's default for
  // a Cluster's nodes: a promoted replica is connected to on demand); failing fast is the
  // Cluster's own (see openRedis).
  const redisOptions: RedisOptions = { ...node, ...extra, enableOfflineQueue: true };
  const { retryStrategy } = redisOptions;
  return {
    redisOptions,
    enableOfflineQueue: true,
    enableReadyCheck: true,
    scaleReads: 'master',
    maxRedirections: 16,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 200,
    retryDelayOnMoved: 0,
    slotsRefreshTimeout: 2_000,
    slotsRefreshInterval: 5_000,
    clusterRetryStrategy: (times) => (retryStrategy ? retryStrategy(times) : Math.min(100 * 2 ** times, 2_000)),
    // Managed endpoints (TLS, a configuration endpoint behind DNS) name nodes by address: keep
    // the names the cluster gives, so TLS checks them against the certificate.
    ...(redisOptions.tls
      ? { dnsLookup: (address: string, callback: (e: null, a: string) => void) => callback(null, address) }
      : {}),
  };
}

/** How long a fail-fast Cluster connection queues commands while it first connects. */
const FIRST_CONNECT_MS = 3_000;

/**
 * Opens a connection of the given role, named `name` in `CLIENT LIST` (on each node, for a
 * Cluster). Connection errors surface through the commands that meet them; the listener keeps
 * them off the process.
 */
export function openRedis(target: RedisTarget, role: RedisRole, name: string, extra: RedisOptions = {}): RedisClient {
  const nodes = clusterNodesOf(target);
  if (!nodes) {
    const redis = new Redis({ ...redisOptionsFrom(redisUrlOf(target), role), connectionName: name, ...extra });
    redis.on('error', () => {});
    return redis;
  }
  const cluster = new Cluster(
    nodes.map(nodeOf),
    clusterOptionsFrom(redisUrlOf(target), role, { connectionName: name, ...extra }),
  );
  cluster.on('error', () => {});
  const failFast =
    (extra.enableOfflineQueue ?? redisOptionsFrom(redisUrlOf(target), role).enableOfflineQueue) === false;
  if (failFast) {
    // A Cluster is usable before it says ready (BullMQ sends its version check as soon as a
    // queue is made, while the Cluster is still loading its slot map): its offline queue holds
    // those first commands, then is turned off, so from then on a command fails at once while
    // the Cluster is away, as on a single fail-fast connection.
    const offlineQueueOff = () => {
      cluster.options.enableOfflineQueue = false;
    };
    cluster.once('ready', offlineQueueOff);
    setTimeout(offlineQueueOff, FIRST_CONNECT_MS).unref();
  }
  return cluster;
}

/**
 * Closes a connection: QUIT when Redis answers within `waitMs`, else the socket is dropped (with
 * Redis away QUIT waits for ever on a retrying connection, and fails at once on a fail-fast one).
 */
export async function closeRedis(redis: RedisClient, waitMs = 1_000): Promise<void> {
  if (redis.status === 'ready') await withTimeout(redis.quit(), waitMs).catch(() => {});
  redis.disconnect();
}

export interface RedisConnectionsOptions {
  /** REDIS_URL, or a Cluster's seed nodes (see {@link redisTargetOf}). */
  redis: RedisTarget;
  prefix: string;
  /** Who holds the connections, e.g. `tickwork-worker:<host>:<pid>`: each connection's name starts with it. */
  name: string;
  /**
   * ioredis's `enableAutoPipelining` on the shared connection: the commands sent in one turn of
   * the event loop (the Workers' Lua calls of occurrences finishing together) go in one socket
   * write and one pipeline instead of one each. @defaultValue false
   */
  autoPipelining?: boolean;
}

/**
 * The connections of one process, shared by every BullMQ Queue and Worker it builds. BullMQ shares
 * a connection it is given and never closes it; a Worker still makes one blocking connection of its
 * own (for `BZPOPMIN`, which no other command may wait behind), named by BullMQ after its queue.
 */
export interface RedisConnections {
  /** Retrying (`worker` role): every Queue's and Worker's commands. */
  readonly shared: RedisClient;
  /** Fail-fast (`producer` role): probes, gauges and the reconciler, which must not wait out an outage. */
  readonly failFast: RedisClient;
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
  const shared = openRedis(
    options.redis,
    'worker',
    `${options.name}:shared`,
    options.autoPipelining ? { enableAutoPipelining: true } : {},
  );
  const failFast = openRedis(options.redis, 'producer', `${options.name}:fail-fast`);
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
