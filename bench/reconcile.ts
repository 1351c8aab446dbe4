/**
 * How long a reconcile pass takes over 100,000 active jobs (the bar: under 30 s).
 *
 *   node bench/reconcile.ts [--jobs 100000]
 *
 * Uses the local Postgres (a database of its own, dropped afterwards) and a redis-server of its
 * own on a free port (a scheduler costs ~1.3 KB: 130 MB that should not land in a shared Redis).
 * Measures three passes: cold (Redis empty: every scheduler registered — a FLUSHALL), warm
 * (nothing to repair: the steady state every 30 s).
 */
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { createDatabase, dropDatabase, ensureDatabase, insertService, migrateToLatest } from '@tickwork/db';
import { createReconciler } from '@tickwork/worker';
import { FireQueue } from '@tickwork/queue';
import { startOwnRedis } from '@tickwork/testkit';

const args = process.argv.slice(2);
const at = args.indexOf('--jobs');
const JOBS = at >= 0 ? Number(args[at + 1]) : 100_000;

const redisServer = await startOwnRedis();
const redisUrl = redisServer.url;
const base = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
base.pathname = `/tw_bench_reconcile_${Date.now().toString(36)}`;
const databaseUrl = base.toString();
await ensureDatabase(databaseUrl);
const database = createDatabase({ url: databaseUrl, poolMax: 4 });
await migrateToLatest(database.db);
const prefix = '{twbench}';
const fireQueue = new FireQueue({ redisUrl, prefix });
const reconciler = createReconciler({ db: database.db, fireQueue });

try {
  // One service holds every job: its quota (counted by the database, migration 0003) must allow them.
  const service = await insertService(database.db, { id: uuidv7(), name: 'bench', signingSecret: 'x', maxJobs: JOBS });
  const schedules = [
    { every: '1m' },
    { every: '5m' },
    { every: '1h' },
    { cron: '*/15 * * * *', timezone: 'Europe/Berlin' },
    { cron: '0 9 * * 1-5', timezone: 'America/New_York' },
  ];
  const started = Date.now();
  const specs = schedules.map((schedule) =>
    buildJobSpec({ name: 'x', schedule, target: { url: 'http://127.0.0.1:9/' } }, { now: started }),
  );
  // Every job's next run is ahead, as in a healthy system; its exact instant does not matter here.
  const nextRunAt = new Date(started + 3_600_000);
  for (let offset = 0; offset < JOBS; offset += 5_000) {
    const rows = [];
    for (let i = offset; i < Math.min(JOBS, offset + 5_000); i++) {
      const now = started - (JOBS - i);
      const spec = specs[i % specs.length]!;
      rows.push({
        id: uuidv7(now),
        service_id: service.id,
        name: `job-${i}`,
        labels: '{}',
        schedule: JSON.stringify(spec.schedule),
        target: JSON.stringify(spec.target),
        misfire: JSON.stringify(spec.misfire),
        retry: JSON.stringify(spec.retry),
        state: 'active',
        version: 1,
        next_run_at: nextRunAt,
        created_at: new Date(now),
        updated_at: new Date(now),
      });
    }
    await database.db.insertInto('jobs').values(rows).execute();
  }
  console.log(`bench/reconcile: ${JOBS} active jobs written in ${Date.now() - started} ms`);

  const cold = await reconciler.run();
  // A cold pass after a loss also enqueues catch-ups for jobs whose next run passed; these
  // jobs' next runs are all ahead, so the figure is the registration itself.
  console.log(`cold pass (Redis empty):     ${cold.durationMs} ms, repairs ${JSON.stringify(cold.repairs)}`);
  const warm = await reconciler.run();
  console.log(`warm pass (nothing to do):   ${warm.durationMs} ms, repairs ${JSON.stringify(warm.repairs)}`);

  const verdict = cold.durationMs < 30_000 && warm.durationMs < 30_000 ? 'under' : 'OVER';
  console.log(
    `\nRESULT reconcile ${JOBS} jobs: cold ${(cold.durationMs / 1000).toFixed(1)} s, warm ${(warm.durationMs / 1000).toFixed(1)} s (${verdict} the 30 s bar)`,
  );
} finally {
  await fireQueue.close();
  await database.close();
  await dropDatabase(databaseUrl);
  await redisServer.stop();
}
