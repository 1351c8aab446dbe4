/**
 * The environment, validated once at start. Every failing variable is named; the process exits
 * on a bad value instead of running with a surprise. docs/design.md (Configuration) lists the variables.
 */
import { parseAllowedHost } from './outbound.ts';

export interface Config {
  nodeEnv: string;
  /** @defaultValue `postgres://postgres@127.0.0.1:5432/tickwork` */
  databaseUrl: string;
  databaseReadUrl: string | undefined;
  /** A read replica further behind than this serves no reads. @defaultValue 10000 */
  databaseReadMaxLagMs: number;
  /** @defaultValue 20 */
  databasePoolMax: number;
  /** @defaultValue `redis://127.0.0.1:6379` */
  redisUrl: string;
  /** REDIS_CLUSTER_NODES: seed nodes (`host:port`) of a Redis Cluster; unset: the one Redis at redisUrl. */
  redisClusterNodes: string[] | undefined;
  /** FIRE_QUEUE_SHARDS: how many fire queues the jobs are split over. @defaultValue 1 */
  fireQueueShards: number;
  /** FIRE_QUEUE_CONSUME: the shards (0-based) this worker consumes; unset: every shard. */
  fireQueueConsume: number[] | undefined;
  /**
   * @defaultValue `{tickwork}` (a hash tag: every queue on one Redis Cluster slot; an untagged
   * prefix lets each queue carry its own, so the fire shards spread over a Cluster's masters)
   */
  bullmqPrefix: string;
  host: string;
  /** @defaultValue 3000 */
  port: number;
  adminToken: string | undefined;
  logLevel: string;
  /** @defaultValue 10 */
  workerConcurrency: number;
  /** @defaultValue 9464 */
  workerPort: number;
  callbackAllowPrivate: boolean;
  callbackAllowedHosts: string[];
  /** @defaultValue 7 */
  runRetentionDays: number;
  /** @defaultValue 30000 */
  reconcileIntervalMs: number;
  /** How often a reconcile pass is a full sweep (every job and scheduler) instead of a steady one; 0: always. */
  reconcileSweepIntervalMs: number;
  /** @defaultValue 30000 */
  shutdownGraceMs: number;
  /** @defaultValue 1200 */
  rateLimitPerMinute: number;
  /** 32 bytes that encrypt signing secrets at rest. */
  secretKey: string;
  /** How often the alert watch judges occurrences and sends alert webhooks. @defaultValue 10000 */
  alertWatchIntervalMs: number;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const DEV_SECRET_KEY = 'tickwork-development-secret-key-not-for-production';

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = [];
  const str = (name: string, fallback: string) => {
    const value = env[name];
    return value === undefined || value === '' ? fallback : value;
  };
  const int = (name: string, fallback: number, min: number, max: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  };
  const bool = (name: string) => {
    const raw = (env[name] ?? '').toLowerCase();
    if (raw === '' || raw === 'false' || raw === '0') return false;
    if (raw === 'true' || raw === '1') return true;
    problems.push(`${name} must be true or false (got "${env[name]}")`);
    return false;
  };
  const url = (name: string, fallback: string, protocols: string[]) => {
    const value = str(name, fallback);
    try {
      const parsed = new URL(value);
      if (!protocols.includes(parsed.protocol)) problems.push(`${name} must be a ${protocols.join(' or ')} URL`);
    } catch {
      problems.push(`${name} is not a URL (got "${value}")`);
    }
    return value;
  };

  const nodeEnv = str('NODE_ENV', 'development');
  const logLevel = str('LOG_LEVEL', 'info');
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "${logLevel}")`);
  }
  const adminToken = env.ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    problems.push('ADMIN_TOKEN must be at least 16 characters');
  }
  let secretKey = env.SECRET_KEY ?? '';
  if (secretKey === '') {
    if (nodeEnv === 'production') problems.push('SECRET_KEY is required when NODE_ENV=production');
    secretKey = DEV_SECRET_KEY;
  } else if (secretKey.length < 32) {
    problems.push('SECRET_KEY must be at least 32 characters');
  }
  const readUrl = env.DATABASE_READ_URL || undefined;
  const allowedHosts = () => {
    const entries = str('CALLBACK_ALLOWED_HOSTS', '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean);
    for (const entry of entries) {
      if (!parseAllowedHost(entry))
        problems.push(`CALLBACK_ALLOWED_HOSTS entries are host or host:port (got "${entry}")`);
    }
    return entries;
  };

  const clusterNodes = () => {
    const entries = str('REDIS_CLUSTER_NODES', '')
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean);
    for (const entry of entries) {
      const port = /^\[?[^\]\s]+?\]?:(\d+)$/.exec(entry)?.[1];
      if (port === undefined || Number(port) < 1 || Number(port) > 65535) {
        problems.push(`REDIS_CLUSTER_NODES entries are host:port (got "${entry}")`);
      }
    }
    return entries.length > 0 ? entries : undefined;
  };
  const fireQueueShards = int('FIRE_QUEUE_SHARDS', 1, 1, 256);
  const consume = () => {
    const raw = str('FIRE_QUEUE_CONSUME', '').trim();
    if (raw === '') return undefined;
    const shards = raw.split(',').map((entry) => entry.trim());
    if (shards.some((entry) => !/^\d+$/.test(entry) || Number(entry) >= fireQueueShards)) {
      problems.push(`FIRE_QUEUE_CONSUME lists shards 0 to ${fireQueueShards - 1}, comma-separated (got "${raw}")`);
      return undefined;
    }
    return [...new Set(shards.map(Number))].sort((a, b) => a - b);
  };

  const config: Config = {
    nodeEnv,
    databaseUrl: url('DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/tickwork', ['postgres:', 'postgresql:']),
    databaseReadUrl:
      readUrl === undefined ? undefined : url('DATABASE_READ_URL', readUrl, ['postgres:', 'postgresql:']),
    databaseReadMaxLagMs: int('DATABASE_READ_MAX_LAG_MS', 10_000, 100, 3_600_000),
    databasePoolMax: int('DATABASE_POOL_MAX', 20, 1, 1000),
    redisUrl: url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    redisClusterNodes: clusterNodes(),
    fireQueueShards,
    fireQueueConsume: consume(),
    bullmqPrefix: str('BULLMQ_PREFIX', '{tickwork}'),
    host: str('HOST', '0.0.0.0'),
    port: int('PORT', 3000, 0, 65535),
    adminToken,
    logLevel,
    workerConcurrency: int('WORKER_CONCURRENCY', 10, 1, 1000),
    workerPort: int('WORKER_PORT', 9464, 0, 65535),
    callbackAllowPrivate: bool('CALLBACK_ALLOW_PRIVATE'),
    callbackAllowedHosts: allowedHosts(),
    runRetentionDays: int('RUN_RETENTION_DAYS', 7, 1, 3650),
    reconcileIntervalMs: int('RECONCILE_INTERVAL_MS', 30_000, 1_000, 86_400_000),
    reconcileSweepIntervalMs: int('RECONCILE_SWEEP_INTERVAL_MS', 600_000, 0, 86_400_000),
    shutdownGraceMs: int('SHUTDOWN_GRACE_MS', 30_000, 0, 600_000),
    rateLimitPerMinute: int('RATE_LIMIT_PER_MINUTE', 1200, 1, 10_000_000),
    secretKey,
    alertWatchIntervalMs: int('ALERT_WATCH_INTERVAL_MS', 10_000, 100, 3_600_000),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
