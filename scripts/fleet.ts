/**
 * `npm run fleet -- --api 3 --workers 3 [--port 8080] [--redis-cluster 3] [--pg-replica
 * [--pg-replica-delay-ms 2000]]`: a local fleet of the built code (the test kit's `startFleet`: N
 * api and M worker processes behind Debian's nginx) on the local Postgres and Redis. It prints the
 * URLs and stops everything on Ctrl-C.
 *
 * `--redis-cluster N` starts a Redis Cluster of the fleet's own instead (N masters, N replicas, on
 * free loopback ports; gone with the fleet), with the fire queue in N shards (FIRE_QUEUE_SHARDS)
 * under the untagged prefix `tickwork`.
 *
 * `--pg-replica` runs the fleet on a Postgres primary and a streaming read replica of its own
 * instead (the test kit's `startPgReplica`: initdb and pg_basebackup from Debian's Postgres 15
 * binaries, on free loopback ports, removed on stop); the api gets DATABASE_READ_URL. The
 * machine's own Postgres and its pg_hba.conf are not touched.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  startFleet,
  startOwnRedisCluster,
  startPgReplica,
  type FleetEnv,
  type OwnRedisCluster,
  type PgReplicaPair,
} from '@tickwork/testkit';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function argValue(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}

async function main() {
  const args = process.argv.slice(2);
  const count = (name: string, fallback: number, max = 64) => {
    const raw = argValue(args, name);
    const value = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < 0 || value > max) {
      console.error(`fleet: ${name} must be a whole number from 0 to ${max}`);
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
  const withReplica = args.includes('--pg-replica');
  const delayMs = count('--pg-replica-delay-ms', 0, 600_000);
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
  let pg: PgReplicaPair | undefined;
  // Whatever fails from here on stops what was started before it: the cluster's and the pair's
  // servers are children of this process and would outlive it.
  const stopStores = async () => {
    await pg?.stop();
    await cluster?.stop();
  };
  let fleet: Awaited<ReturnType<typeof startFleet>>;
  try {
    if (withReplica) {
      console.log(`fleet: starting a Postgres primary and read replica of the fleet's own (apply delay ${delayMs} ms)`);
      pg = await startPgReplica({ applyDelayMs: delayMs, database: 'tickwork' });
      env.DATABASE_URL = pg.primary.url();
      env.DATABASE_READ_URL = pg.replica.url();
    }
    execFileSync('bash', ['scripts/ensure-services.sh'], {
      cwd: ROOT,
      stdio: 'inherit',
      env: {
        ...process.env,
        REDIS_URL: env.REDIS_URL,
        ...(pg ? { ENSURE_SKIP_POSTGRES: '1' } : {}),
        ...(cluster ? { ENSURE_SKIP_REDIS: '1' } : {}),
      },
    });
    execFileSync('sh', ['infra/node/launch.sh', 'migrate'], {
      cwd: ROOT,
      env: { ...process.env, ...env, NODE: process.execPath },
      stdio: 'inherit',
    });
    fleet = await startFleet({
      apis,
      workers,
      env,
      from: 'dist',
      ...(port ? { port: Number(port) } : {}),
      onOutput: (name, text) => {
        for (const line of text.split('\n')) if (line) console.log(`[${name}] ${line}`);
      },
    });
  } catch (error) {
    await stopStores();
    throw error;
  }
  console.log(
    [
      '',
      `Tickwork fleet: ${apis} api, ${workers} worker processes. Ctrl-C stops everything at once;`,
      `  kill -TERM ${process.pid} stops it gracefully (in-flight work finishes).`,
      `  API (nginx)  ${fleet.url}/v1`,
      ...fleet.apis.map((p, i) => `  api-${i + 1}        ${p.url}   (pid ${p.child.pid})`),
      ...fleet.workers.map((p, i) => `  worker-${i + 1}     ${p.url}/health/ready   (pid ${p.child.pid})`),
      `  Bull Board   ${fleet.url}/admin/queues   (password: the ADMIN_TOKEN)`,
      `  ADMIN_TOKEN  ${env.ADMIN_TOKEN}`,
      `  Postgres     ${env.DATABASE_URL}${pg ? "   (primary, the fleet's own)" : ''}`,
      ...(pg ? [`  Replica      ${env.DATABASE_READ_URL}   (DATABASE_READ_URL, streaming)`] : []),
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
      .then(stopStores)
      .then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

await main();
