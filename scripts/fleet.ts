/**
 * `npm run fleet -- --api 3 --workers 3 [--port 8080] [--redis-cluster 3]`: a local fleet of the
 * built code (the test kit's `startFleet`: N api and M worker processes behind Debian's nginx) on
 * the local Postgres and Redis. `--redis-cluster N` starts a Redis Cluster of the fleet's own
 * instead (N masters, N replicas, on free loopback ports; gone with the fleet), with the fire queue
 * in N shards (FIRE_QUEUE_SHARDS) under the untagged prefix `tickwork`. It prints the URLs and
 * stops everything on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { startFleet, startOwnRedisCluster, type FleetEnv, type OwnRedisCluster } from '@tickwork/testkit';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function argValue(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}

async function main() {
  const args = process.argv.slice(2);
  const count = (name: string, fallback: number) => {
    const raw = argValue(args, name);
    const value = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < 0 || value > 64) {
      console.error(`fleet: ${name} must be a whole number from 0 to 64`);
      process.exit(2);
    }
    return value;
  };
  const apis = count('--api', 3);
  const workers = count('--workers', 3);
  const port = argValue(args, '--port');
  const masters = args.includes('--redis-cluster') ? count('--redis-cluster', 3) : 0;
  if (args.includes('--redis-cluster') && masters < 3) {
    console.error('fleet: --redis-cluster needs at least 3 masters (Redis Cluster’s minimum)');
    process.exit(2);
  }
  let cluster: OwnRedisCluster | undefined;
  if (masters > 0) {
    cluster = await startOwnRedisCluster({ masters, replicas: 1 });
    console.log(`fleet: Redis Cluster of ${masters} masters and ${masters} replicas on ${cluster.nodesEnv}`);
  }
  const env: FleetEnv = {
    DATABASE_URL: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/tickwork',
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    BULLMQ_PREFIX: process.env.BULLMQ_PREFIX ?? (cluster ? 'tickwork' : '{tickwork}'),
    ...(cluster
      ? {
          REDIS_CLUSTER_NODES: cluster.nodesEnv,
          FIRE_QUEUE_SHARDS: process.env.FIRE_QUEUE_SHARDS ?? String(masters),
        }
      : {}),
    NODE_ENV: process.env.NODE_ENV ?? 'development',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    ADMIN_TOKEN: process.env.ADMIN_TOKEN ?? `dev-admin-${randomBytes(12).toString('hex')}`,
    CALLBACK_ALLOW_PRIVATE: process.env.CALLBACK_ALLOW_PRIVATE ?? 'true',
  };
  execFileSync('bash', ['scripts/ensure-services.sh'], { cwd: ROOT, stdio: 'inherit' });
  execFileSync('sh', ['infra/node/launch.sh', 'migrate'], {
    cwd: ROOT,
    env: { ...process.env, ...env, NODE: process.execPath },
    stdio: 'inherit',
  });
  const fleet = await startFleet({
    apis,
    workers,
    env,
    from: 'dist',
    ...(port ? { port: Number(port) } : {}),
    onOutput: (name, text) => {
      for (const line of text.split('\n')) if (line) console.log(`[${name}] ${line}`);
    },
  });
  console.log(
    [
      '',
      `Tickwork fleet: ${apis} api, ${workers} worker processes. Ctrl-C stops everything.`,
      `  API (nginx)  ${fleet.url}/v1`,
      ...fleet.apis.map((p, i) => `  api-${i + 1}        ${p.url}   (pid ${p.child.pid})`),
      ...fleet.workers.map((p, i) => `  worker-${i + 1}     ${p.url}/health/ready   (pid ${p.child.pid})`),
      `  Bull Board   ${fleet.url}/admin/queues   (password: the ADMIN_TOKEN)`,
      `  ADMIN_TOKEN  ${env.ADMIN_TOKEN}`,
      `  Postgres     ${env.DATABASE_URL}`,
      cluster
        ? `  Redis        Cluster ${env.REDIS_CLUSTER_NODES}  prefix ${env.BULLMQ_PREFIX}` +
          `  shards ${env.FIRE_QUEUE_SHARDS}`
        : `  Redis        ${env.REDIS_URL}  prefix ${env.BULLMQ_PREFIX}`,
      '',
    ].join('\n'),
  );
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    console.log('fleet: stopping');
    void fleet
      .stop()
      .then(() => cluster?.stop())
      .then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

await main();
