/**
 * BullMQ keeps schedulers and pending occurrences as ordinary Redis keys: a Redis that evicts
 * keys under memory pressure silently drops runs. Both processes check the policy at start.
 */
import { openRedis, type RedisTarget } from './connection.ts';

/** The slice of an ioredis client the check needs. */
export interface RedisInfoClient {
  config(subcommand: 'GET', parameter: string): Promise<unknown>;
  info(section: string): Promise<string>;
}

/**
 * Redis's `maxmemory-policy`, from CONFIG GET or, where CONFIG is disabled or renamed (managed
 * Redis services often do that), from INFO memory. Undefined when neither tells.
 */
export async function evictionPolicyOf(client: RedisInfoClient): Promise<string | undefined> {
  try {
    const answer = await client.config('GET', 'maxmemory-policy');
    if (Array.isArray(answer) && typeof answer[1] === 'string') return answer[1];
  } catch {
    // CONFIG not allowed: ask INFO.
  }
  const info = await client.info('memory');
  return /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
}

export interface WarnLogger {
  warn(fields: object, message: string): void;
}

export const EVICTION_WARNING =
  'REDIS MAY EVICT TICKWORK DATA: set maxmemory-policy noeviction on Redis, or schedulers and pending runs can vanish under memory pressure';

/**
 * Logs a loud warning unless the Redis at `redis` (a Cluster: the node asked) runs with `maxmemory-policy noeviction`;
 * returns the policy. Uses a short-lived connection of its own and never throws.
 */
export async function warnUnlessNoeviction(redis: RedisTarget, logger: WarnLogger): Promise<string | undefined> {
  // One attempt, waiting for the connection rather than failing before it is up.
  const client = openRedis(redis, 'producer', 'tickwork:eviction-check', {
    enableOfflineQueue: true,
    retryStrategy: () => null,
  });
  try {
    return await warnUnlessNoevictionOn(client, logger);
  } finally {
    client.disconnect();
  }
}

/** The same check on a connection the caller holds (a worker's shared one). Never throws. */
export async function warnUnlessNoevictionOn(client: RedisInfoClient, logger: WarnLogger): Promise<string | undefined> {
  let policy: string | undefined;
  try {
    policy = await evictionPolicyOf(client);
  } catch (error) {
    logger.warn(
      { err: error, setting: 'maxmemory-policy' },
      'could not read Redis maxmemory-policy; make sure it is noeviction',
    );
    return undefined;
  }
  if (policy !== 'noeviction') {
    logger.warn({ setting: 'maxmemory-policy', actual: policy ?? 'unknown', expected: 'noeviction' }, EVICTION_WARNING);
  }
  return policy;
}
