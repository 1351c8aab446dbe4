import type { RedisOptions } from 'ioredis';

/**
 * ioredis options from a URL. `role` decides how a command behaves while Redis is away:
 * - `producer` (the api's queue): fail fast, so a request answers 503 instead of hanging;
 * - `worker` (BullMQ workers, blocking): retry for ever, as BullMQ requires.
 */
export function redisOptionsFrom(url: string, role: 'producer' | 'worker'): RedisOptions {
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
