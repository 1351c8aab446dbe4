/**
 * `npm run bench -- <api|fire|all> [options]` and `npm run bench -- --quick`.
 * Every figure is a ratio or a percentile measured side by side in one run; see bench/RESULTS.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchApi, type ApiFigures } from './api-bench.ts';
import {
  compareLever,
  drainCompare,
  fireAtRate,
  ProcessDied,
  scaleOut,
  startSink,
  type AtRateFigures,
  type Contestant,
  type DrainFigures,
  type ScaleFigures,
  type LeverFigures,
} from './fire-bench.ts';
import { describeMachine, printMachine } from './machine.ts';
import { startRedis } from './redis-server.ts';
import { clusterBench, type ClusterFigures } from './cluster-bench.ts';
import { deploy } from './tickwork.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    schedules: { type: 'string' },
    rate: { type: 'string' },
    'measure-s': { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string', default: '50' },
    instances: { type: 'string' },
    drain: { type: 'string' },
    'max-workers': { type: 'string', default: '3' },
    hz: { type: 'string', default: '10,100' },
    'skip-peers': { type: 'boolean', default: false },
    'skip-scale': { type: 'boolean', default: false },
    // `fire`: the at-rate part alone (no drain, no scale-out), to keep one invocation short.
    'skip-drain': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    env: { type: 'string', multiple: true },
    // `lever`: the baseline's own settings (default: none), e.g. LOG_LEVEL=info on both sides.
    'a-env': { type: 'string', multiple: true },
    'redis-config': { type: 'string', multiple: true },
    contestants: { type: 'string', default: 'tickwork,bullmq-fetch,bullmq-noop,pgboss,graphile,timers' },
    // `fire`: the same at-rate run and a Tickwork drain on a Redis Cluster of N masters (N fire
    // shards) beside the single node; 0 skips it.
    'redis-cluster': { type: 'string', default: '3' },
  },
});

const quick = values.quick;
const command = positionals[0] ?? (quick ? 'all' : 'all');
const sharedRedis = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const num = (v: string | undefined, fallback: number) => (v === undefined ? fallback : Number(v));
const started = Date.now();
const profileDir = fileURLToPath(new URL('../results/profiles/', import.meta.url));
const nodeOptions = values.profile ? `--cpu-prof --cpu-prof-dir=${profileDir}` : undefined;

const machine = await describeMachine(sharedRedis, databaseUrl);
console.log(`bench ${quick ? '--quick ' : ''}${command} ${process.argv.slice(2).join(' ')}`);
printMachine(machine);

const out: {
  date: string;
  argv: string[];
  machine: typeof machine;
  api?: ApiFigures;
  /** Figures per `hz`, or the death of a process that ended during the part. */
  fire?: Array<AtRateFigures | { redisHz: number; died: Pick<ProcessDied, 'role' | 'code' | 'signal' | 'lastOutput'> }>;
  drain?: DrainFigures;
  scale?: ScaleFigures;
  lever?: LeverFigures;
  cluster?: ClusterFigures;
} = { date: new Date().toISOString(), argv: process.argv.slice(2), machine };

if (command === 'api' || command === 'all') {
  console.log('api: autocannon against one api process and a hello-world Fastify (same Node)');
  out.api = await benchApi({
    redisUrl: sharedRedis,
    rounds: num(values.rounds, quick ? 1 : 3),
    durationS: num(values.duration, quick ? 2 : 10),
    connections: Number(values.connections),
    nodeOptions,
    // `--instances 1,2,3`: api processes behind nginx after the one-process part (none in quick mode).
    instances: (values.instances ?? (quick ? '' : '1,2,3')).split(',').filter(Boolean).map(Number),
  });
  console.log(`  hello-world ${out.api.helloReqPerSec} req/s p99 ${out.api.helloP99Ms} ms`);
  for (const e of out.api.endpoints) {
    const rounds = e.ratiosByRound.join(', ');
    console.log(
      `  ${e.name.padEnd(24)} ${e.reqPerSec} req/s = ${e.ratioToHello}× hello (rounds ${rounds}); ` +
        `p50 ${e.p50Ms} p99 ${e.p99Ms} ms; at half rate (${e.halfRate}/s) p99 ${e.halfRateP99Ms} ms, paced ${e.pacedP99Ms} ms`,
    );
  }
}

if (command === 'fire' || command === 'all') {
  const schedules = num(values.schedules, quick ? 1_000 : 20_000);
  const rate = num(values.rate, quick ? 200 : 1_000);
  const measureS = num(values['measure-s'], quick ? 5 : 30);
  const hzList = quick ? [10] : values.hz!.split(',').map(Number);
  const drainCount = num(values.drain, quick ? 300 : 3_000);
  const rounds = num(values.rounds, quick ? 1 : 3);
  const sink = await startSink();
  const fire: NonNullable<typeof out.fire> = [];
  out.fire = fire;
  const redises = new Map<number, Awaited<ReturnType<typeof startRedis>>>();
  try {
    for (const hz of hzList) {
      const redis = await startRedis(hz);
      redises.set(hz, redis);
      console.log(
        `fire at rate: ${schedules} schedules, ${rate} due/s, own Redis hz ${hz} (${redis.url}), 1 worker at concurrency 10`,
      );
      const figures =
        schedules === 0
          ? undefined
          : await fireAtRate({
              redisUrl: redis.url,
              redisHz: hz,
              schedules,
              rate,
              measureS,
              workers: 1,
              sink,
              nodeOptions,
              lateWaitMs: quick ? 10_000 : 60_000,
            }).catch((error: unknown) => {
              // A process that died is the result of this part: reported, instead of figures.
              if (!(error instanceof ProcessDied)) throw error;
              console.log(`  hz${hz}: ${error.message}`);
              fire.push({
                redisHz: hz,
                died: { role: error.role, code: error.code, signal: error.signal, lastOutput: error.lastOutput },
              });
              return undefined;
            });
      if (!figures) continue;
      out.fire.push(figures);
      console.log(
        `  hz${hz}: ${figures.deliveriesPerSec} deliveries/s, lag p50/p95/p99 ${figures.lagP50Ms}/${figures.lagP95Ms}/${figures.lagP99Ms} ms (max ${figures.lagMaxMs}), ` +
          `lost ${figures.lost}, duplicates ${figures.duplicates}, runs ${figures.runsRecorded}/${figures.expected}, Redis ${figures.redisBytesPerSchedule} B/schedule, ` +
          `RSS api ${figures.apiRssMaxMiB} MiB (idle ${figures.apiRssIdleMiB}) workers ${figures.workerRssMaxMiB.join(',')} MiB (idle ${figures.workerRssIdleMiB.join(',')}); ` +
          `runs written in the window ${figures.recordedPerSec}/s ${JSON.stringify(figures.recordedByOutcome)}; ` +
          `CPU in the window (% of one core) ${JSON.stringify(figures.cpuPercentOfOneCore)}`,
      );
    }
    const redis = redises.get(hzList[0]!)!;
    // `--skip-drain`: the at-rate runs alone.
    if (!values['skip-drain']) {
      const contestants = (values['skip-peers'] ? 'tickwork' : values.contestants!).split(',') as Contestant[];
      const tw = await deploy({ redisUrl: redis.url, workers: 1, label: 'tw_bench_drain', nodeOptions });
      try {
        const service = await tw.service('bench-drain', 10_000_000);
        console.log(
          `drain: ${drainCount} occurrences due at one instant, ${rounds} round(s), contestants ${contestants.join(', ')} (Redis hz ${redis.hz})`,
        );
        out.drain = await drainCompare({
          redisUrl: redis.url,
          sink,
          count: drainCount,
          rounds,
          contestants,
          tw,
          token: service.token,
        });
        for (const [kind, f] of Object.entries(out.drain.perContestant))
          console.log(
            `  ${kind.padEnd(13)} ${f.perSec}/s (rounds ${f.shots.join(', ')}); CPU ms per occurrence (median) ${JSON.stringify(f.cpuMsPerOccurrence)}`,
          );
        console.log(
          `  tickwork/bullmq-fetch ${out.drain.tickworkOverBullmqFetch}×, tickwork/pg-boss ${out.drain.tickworkOverPgboss}×, tickwork/graphile-worker ${out.drain.tickworkOverGraphile}×, tickwork/timers ${out.drain.tickworkOverTimers}×, ` +
            `tickwork/bullmq-fetch-pg ${out.drain.tickworkOverBullmqFetchPg}×, bullmq-fetch-pg/bullmq-fetch ${out.drain.bullmqFetchPgOverBullmqFetch}×`,
        );
        if (!quick && !values['skip-scale']) {
          console.log(`scale-out: the same drain with 1..${values['max-workers']} workers`);
          out.scale = await scaleOut({
            tw,
            token: service.token,
            sink,
            count: drainCount,
            rounds,
            maxWorkers: Number(values['max-workers']),
          });
          for (const row of out.scale.rows)
            console.log(
              `  workers=${row.workers} ${row.perSec}/s (${row.perWorker}/s per worker, ${row.perWorkerCpuSecond} per worker CPU-second)`,
            );
        }
      } finally {
        await tw.close();
      }
    }
    const masters = Number(values['redis-cluster']);
    if (masters > 0) {
      out.cluster = await clusterBench({
        masters,
        single: redis,
        sink,
        schedules,
        rate,
        measureS,
        drainCount,
        rounds,
        quick,
        nodeOptions,
      });
    }
  } finally {
    await sink.close();
    for (const r of redises.values()) await r.stop();
  }
}

if (command === 'lever') {
  // `lever --env NAME=value …`: the drain with and without one setting, side by side.
  const pairs = (list: string[] | undefined) =>
    Object.fromEntries((list ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const env = pairs(values.env);
  const baseEnv = pairs(values['a-env']);
  // `--redis-config name=value`: a Redis setting of the variant's shots (CONFIG SET on the bench's Redis).
  const redisConfig = pairs(values['redis-config']);
  const hz = Number(values.hz!.split(',')[0]);
  const redis = await startRedis(hz);
  const sink = await startSink();
  const tw = await deploy({ redisUrl: redis.url, workers: 0, label: 'tw_bench_lever' });
  try {
    const service = await tw.service('bench-lever', 10_000_000);
    const count = num(values.drain, 1_000);
    console.log(
      `lever: drain of ${count} with the default worker ${JSON.stringify(baseEnv)} vs ${JSON.stringify({ ...env, ...redisConfig })}, own Redis hz ${hz}`,
    );
    out.lever = await compareLever({
      tw,
      token: service.token,
      sink,
      count,
      rounds: num(values.rounds, 3),
      env,
      baseEnv,
      redisConfig,
    });
    console.log(`  variant/default ${out.lever.variantOverBaseline}×`);
  } finally {
    await tw.close();
    await sink.close();
    await redis.stop();
  }
}

mkdirSync(new URL('../results/', import.meta.url), { recursive: true });
const file = new URL(`../results/${quick ? 'quick' : command}.json`, import.meta.url);
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(
  `figures written to bench/results/${quick ? 'quick' : command}.json (${Math.round((Date.now() - started) / 1000)} s)`,
);

if (quick) {
  const first = out.fire?.[0];
  const fireFigures =
    first && 'died' in first ? { lagP99Ms: undefined, died: first.died } : { ...first, died: undefined };
  const ratio = (name: string) => out.api?.endpoints.find((e) => e.name === name)?.ratioToHello ?? Number.NaN;
  console.log(
    `bench: create/hello=${ratio('POST /v1/jobs')} get/hello=${ratio('GET /v1/jobs/{id}')} list/hello=${ratio('GET /v1/jobs?limit=100')} ` +
      `fire/raw=${out.drain?.tickworkOverBullmqFetch ?? Number.NaN} fire/pgboss=${out.drain?.tickworkOverPgboss ?? Number.NaN} ` +
      `lagP99Ms=${fireFigures?.lagP99Ms ?? (fireFigures?.died ? `died(${fireFigures.died.code ?? fireFigures.died.signal})` : Number.NaN)}`,
  );
}
process.exit(0);
