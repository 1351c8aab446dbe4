/**
 * What a reconcile pass costs at 10,000 and 100,000 active jobs: wall time, this process's CPU
 * (the reconciler's own work, as in a worker), Redis's CPU, and the peak of the live heap above
 * what was live before the pass (the heap in use right after each full collection: what the pass
 * holds, not the garbage it leaves for the collector). Run it with the worker's heap flags
 * (infra/node/launch.sh), as above: a reconciler that outgrows them dies here as in a worker.
 *
 *   node --max-old-space-size=96 --max-semi-space-size=2 bench/reconcile.ts [--jobs 10000,100000] [--interval-s 30]
 * [--sweep-interval-s 600] [--reconciler <file>]
 *
 * Uses the local Postgres (a database of its own, dropped afterwards) and a redis-server of its
 * own on a free port (a scheduler costs ~1.3 KB: 130 MB that should not land in a shared Redis).
 * Passes, in order: rebuild (Redis emptied, a FLUSHALL: every scheduler registered again by a
 * sweep), sweep (nothing to repair), steady (nothing changed), steady with 1% of the jobs changed
 * and 10 schedulers lost, whose jobs are overdue. The average cost is what a worker pays with one
 * pass every `--interval-s`, a sweep every `--sweep-interval-s` of them, the rest steady.
 * `--reconciler <file>` measures another module's `reconcile` (an older copy of
 * apps/worker/src/reconcile.ts placed beside it, for a before/after); one without steady passes
 * runs its one kind of pass wherever a steady one is asked for.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { createDatabase, dropDatabase, ensureDatabase, insertService, migrateToLatest } from '@tickwork/db';
import { reconcile as shipped, type ReconcileMode, type ReconcileReport } from '@tickwork/worker';
import { FireQueue, schedulerIdOf } from '@tickwork/queue';
import { startOwnRedis } from '@tickwork/testkit';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1]! : fallback;
};
const SIZES = arg('--jobs', '10000,100000').split(',').map(Number);
const INTERVAL_S = Number(arg('--interval-s', '30'));
const SWEEP_INTERVAL_S = Number(arg('--sweep-interval-s', '600'));
const other = arg('--reconciler', '');
const reconcile: typeof shipped = other
  ? ((await import(pathToFileURL(resolve(other)).href)) as { reconcile: typeof shipped }).reconcile
  : shipped;

interface Measured {
  name: string;
  report: ReconcileReport;
  cpuMs: number;
  redisCpuMs: number;
  peakHeapMiB: number;
}

async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

async function measure(
  name: string,
  redis: Redis,
  run: (mode: ReconcileMode) => Promise<ReconcileReport>,
  mode: ReconcileMode,
): Promise<Measured> {
  gc();
  const base = process.memoryUsage().heapUsed;
  let peak = base;
  // Right after a full (mark-sweep) collection the heap holds only what is live: a scavenge
  // leaves the old generation's garbage in place, and would count it.
  const sampler = new PerformanceObserver((list) => {
    const major = list
      .getEntries()
      .some((entry) => (entry.detail as { kind?: number } | undefined)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR);
    if (major) peak = Math.max(peak, process.memoryUsage().heapUsed);
  });
  sampler.observe({ entryTypes: ['gc'] });
  const redisBefore = await redisCpuMs(redis);
  const cpuBefore = process.cpuUsage();
  const report = await run(mode);
  const cpu = process.cpuUsage(cpuBefore);
  sampler.disconnect();
  gc();
  peak = Math.max(peak, process.memoryUsage().heapUsed);
  const measured = {
    name,
    report,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    redisCpuMs: Math.round((await redisCpuMs(redis)) - redisBefore),
    peakHeapMiB: Math.round(((peak - base) / 2 ** 20) * 10) / 10,
  };
  console.log(
    `  ${name.padEnd(34)} ${(report.mode ?? 'one').padEnd(6)} ${String(report.durationMs).padStart(6)} ms wall, ` +
      `CPU ${String(measured.cpuMs).padStart(6)} ms (Redis ${String(measured.redisCpuMs).padStart(5)} ms), ` +
      `heap peak +${measured.peakHeapMiB} MiB, jobs ${report.jobs}, schedulers ${report.schedulers}, repairs ${JSON.stringify(
        Object.fromEntries(Object.entries(report.repairs).filter(([, n]) => n > 0)),
      )}`,
  );
  return measured;
}

async function atSize(jobs: number): Promise<void> {
  const redisServer = await startOwnRedis();
  const redis = new Redis(redisServer.url);
  const base = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  base.pathname = `/tw_bench_reconcile_${Date.now().toString(36)}`;
  const databaseUrl = base.toString();
  await ensureDatabase(databaseUrl);
  const database = createDatabase({ url: databaseUrl, poolMax: 4 });
  await migrateToLatest(database.db);
  const prefix = '{twbench}';
  const fireQueue = new FireQueue({ redisUrl: redisServer.url, prefix });
  const run = (mode: ReconcileMode) => reconcile({ db: database.db, fireQueue, mode });
  try {
    const service = await insertService(database.db, {
      id: uuidv7(),
      name: 'bench',
      signingSecret: 'x',
      maxJobs: jobs,
    });
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
    // Every job's next run is ahead, as in a healthy system; changed an hour ago.
    const nextRunAt = new Date(started + 3_600_000);
    const changedAt = new Date(started - 3_600_000);
    for (let offset = 0; offset < jobs; offset += 5_000) {
      const rows = [];
      for (let i = offset; i < Math.min(jobs, offset + 5_000); i++) {
        const now = started - 7_200_000 - (jobs - i);
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
          updated_at: changedAt,
        });
      }
      await database.db.insertInto('jobs').values(rows).execute();
    }
    await sql`analyze jobs`.execute(database.db);
    console.log(`reconcile at ${jobs} active jobs (written in ${Date.now() - started} ms):`);

    // As a worker's pass finds it: no marks in Redis, so `auto` sweeps (a rebuild).
    const rebuild = await measure('rebuild after FLUSHALL', redis, run, 'auto');
    const sweep = await measure('sweep, nothing to repair', redis, run, 'sweep');
    const steady = await measure('steady, nothing changed', redis, run, 'steady');
    // 1% changed by the api; 10 schedulers lost whose jobs are now overdue.
    await sql`update jobs set updated_at = now() where id in (select id from jobs order by id limit ${Math.round(jobs / 100)})`.execute(
      database.db,
    );
    const lost = await database.db.selectFrom('jobs').select(['id']).orderBy('id', 'desc').limit(10).execute();
    for (const { id } of lost) await fireQueue.queue.removeJobScheduler(schedulerIdOf(id, 1));
    await database.db
      .updateTable('jobs')
      .set({ next_run_at: new Date(Date.now() - 20_000) })
      .where(
        'id',
        'in',
        lost.map((row) => row.id),
      )
      .execute();
    const busy = await measure('steady, 1% changed, 10 lost', redis, run, 'steady');

    const steadyPerSweep = Math.max(0, SWEEP_INTERVAL_S / INTERVAL_S - 1);
    const averageCore = (sweep.cpuMs + steady.cpuMs * steadyPerSweep) / (SWEEP_INTERVAL_S * 1000);
    const peak = Math.max(sweep.peakHeapMiB, steady.peakHeapMiB, busy.peakHeapMiB);
    console.log(
      `RESULT reconcile ${jobs} jobs: rebuild ${(rebuild.report.durationMs / 1000).toFixed(1)} s; ` +
        `average ${(averageCore * 100).toFixed(2)}% of one core (a sweep every ${SWEEP_INTERVAL_S} s, a steady pass every ${INTERVAL_S} s); ` +
        `heap peak +${peak} MiB (rebuild +${rebuild.peakHeapMiB}); lost found by a steady pass: ${busy.report.repairs.missing}/10`,
    );
  } finally {
    await fireQueue.close();
    redis.disconnect();
    await database.close();
    await dropDatabase(databaseUrl);
    await redisServer.stop();
  }
}

for (const jobs of SIZES) await atSize(jobs);
process.exit(0);
