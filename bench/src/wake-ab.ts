/**
 * Lateness at low load with and without the waker (apps/worker/src/waker.ts), side by side:
 *
 *   node bench/src/wake-ab.ts [--rounds 3] [--hz 10] [--schedules 1000] [--rate 200] [--measure-s 10]
 *                             [--before-root <checkout> | --b-env KEY=VALUE… | --side NAME=FLAGS…]
 *                             [--dump <dir> [--gc-trace]]
 *
 * Each round runs quick mode's fire-at-rate part (a Redis of its own at `hz`, one worker, the
 * sink) twice, once with `TICKWORK_WAKE=off` and once as shipped, in rotated order; the figure is
 * each side's lateness p99 (sink receive − scheduled instant) and the median of the per-round
 * ratios, with the CPU of the worker and Redis in each window. `--before-root` compares another
 * checkout's worker (`TICKWORK_ROOT`, e.g. the previous commit's, built) with this one's instead,
 * both with the waker on: sides `before` and `after`. `--b-env KEY=VALUE` (repeatable) runs side
 * `B` with that environment and side `A` as shipped (a lever, e.g. `TICKWORK_NODE_FLAGS`). `--dump`
 * writes each window's deliveries and the worker's /metrics at its start and end
 * (`<side>-r<round>.json`) for `lag-tail.ts`.
 *
 * `--side NAME=FLAGS` (repeatable, two or more): one side per flag set, the worker alone started
 * with those Node heap flags instead of launch.sh's (through `worker-node.sh`, so the api keeps its
 * own; e.g. `--side s2='--max-old-space-size=96 --max-semi-space-size=2' --side s8=…`), rotated
 * round to round; each side's p99, drain rate and the worker's idle and peak RSS, and the median of
 * its per-round ratios to the first side. `--gc-trace` (with `--dump`): every side's worker writes
 * V8's GC trace and the wall-clock GC events to `<side>-r<round>.gc/` (worker-node.sh), which
 * `lag-tail.ts` lines up with the window's deliveries.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startSink } from '@tickwork/testkit';
import { fireAtRate, type WindowDetails } from './fire-bench.ts';
import { loadNow } from './machine.ts';
import { startRedis } from './redis-server.ts';
import { median, rotated, round } from './stats.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    hz: { type: 'string', default: '10' },
    schedules: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '200' },
    'measure-s': { type: 'string', default: '10' },
    'before-root': { type: 'string' },
    'b-env': { type: 'string', multiple: true },
    dump: { type: 'string' },
    side: { type: 'string', multiple: true },
    'gc-trace': { type: 'boolean', default: false },
  },
});
const hz = Number(values.hz);
const sink = await startSink();
const redis = await startRedis(hz);
const beforeRoot = values['before-root'];
// `--b-env KEY=VALUE` (repeatable): side B's processes get these, side A runs as shipped.
const bEnv = Object.fromEntries(
  (values['b-env'] ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
// `--side NAME=FLAGS`: the worker's heap flags per side, through worker-node.sh (`NODE`).
const sideFlags = new Map(
  (values.side ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const),
);
if (sideFlags.size === 1) throw new Error('--side: give two or more');
if (values['gc-trace'] && !values.dump) throw new Error('--gc-trace needs --dump <dir>');
const workerNode = fileURLToPath(new URL('./worker-node.sh', import.meta.url));
const sides: string[] =
  sideFlags.size > 0
    ? [...sideFlags.keys()]
    : beforeRoot
      ? ['before', 'after']
      : values['b-env']
        ? ['A', 'B']
        : ['off', 'on'];
const [a, b] = sides as [string, string];
const lag: Record<string, number[]> = Object.fromEntries(sides.map((s) => [s, []]));
const ratios: number[] = [];
/** Per side: the per-round ratios to the first side of p99, rate, peak RSS; and the rounds' figures. */
const vsFirst: Record<string, { p99: number[]; rate: number[]; peak: number[] }> = Object.fromEntries(
  sides.map((s) => [s, { p99: [], rate: [], peak: [] }]),
);
const perSide: Record<string, { rate: number[]; idle: number[]; peak: number[] }> = Object.fromEntries(
  sides.map((s) => [s, { rate: [], idle: [], peak: [] }]),
);
function envOf(side: string, r: number): Record<string, string> {
  const env: Record<string, string> = {};
  if (side === 'before') env.TICKWORK_ROOT = beforeRoot!;
  if (side === 'B') Object.assign(env, bEnv);
  if (sideFlags.size > 0 || values['gc-trace'])
    Object.assign(env, { NODE: workerNode, BENCH_REAL_NODE: process.execPath });
  if (sideFlags.has(side)) env.BENCH_WORKER_FLAGS = sideFlags.get(side)!;
  if (values['gc-trace']) env.BENCH_GC_DIR = join(values.dump!, `${side}-r${r + 1}.gc`);
  return env;
}
try {
  for (let r = 0; r < Number(values.rounds); r++) {
    const shot: Record<string, { p99: number; rate: number; peak: number }> = {};
    for (const side of rotated(sides, r)) {
      // The worker process inherits this environment (the test kit's launcher passes it on).
      if (side === 'off') process.env.TICKWORK_WAKE = 'off';
      else delete process.env.TICKWORK_WAKE;
      const load = loadNow();
      const figures = await fireAtRate({
        redisUrl: redis.url,
        redisHz: hz,
        schedules: Number(values.schedules),
        rate: Number(values.rate),
        measureS: Number(values['measure-s']),
        workers: 1,
        sink,
        lateWaitMs: 10_000,
        env: envOf(side, r),
        ...(values.dump
          ? {
              onWindow: (details: WindowDetails) => {
                mkdirSync(values.dump!, { recursive: true });
                writeFileSync(join(values.dump!, `${side}-r${r + 1}.json`), JSON.stringify(details));
              },
            }
          : {}),
      });
      const peak = figures.workerRssMaxMiB[0]!;
      shot[side] = { p99: figures.lagP99Ms, rate: figures.deliveriesPerSec, peak };
      lag[side]!.push(figures.lagP99Ms);
      perSide[side]!.rate.push(figures.deliveriesPerSec);
      perSide[side]!.idle.push(figures.workerRssIdleMiB[0]!);
      perSide[side]!.peak.push(peak);
      const cpu = figures.cpuPercentOfOneCore;
      console.log(
        `  round ${r + 1} waker ${side.padEnd(6)}: lag p50/p95/p99 ${figures.lagP50Ms}/${figures.lagP95Ms}/${figures.lagP99Ms} ms, ` +
          `${figures.deliveriesPerSec}/s, lost ${figures.lost}, duplicates ${figures.duplicates}; CPU % of a core ` +
          `worker ${cpu['worker 1']} redis ${cpu.redis} postgres ${cpu.postgres} box ${cpu.box}; ` +
          `worker RSS idle ${figures.workerRssIdleMiB[0]} peak ${peak} MiB (load ${load})`,
      );
    }
    ratios.push(shot[b]!.p99 / shot[a]!.p99);
    for (const side of sides) {
      vsFirst[side]!.p99.push(shot[side]!.p99 / shot[a]!.p99);
      vsFirst[side]!.rate.push(shot[side]!.rate / shot[a]!.rate);
      vsFirst[side]!.peak.push(shot[side]!.peak / shot[a]!.peak);
    }
  }
  console.log(
    `RESULT wake hz${hz}: lag p99 ${a} ${lag[a]!.join('/')} ms, ${b} ${lag[b]!.join('/')} ms; ` +
      `median ${a} ${median(lag[a]!)} ${b} ${median(lag[b]!)} ms; ${b}/${a} ${round(median(ratios), 3)}×`,
  );
  if (sideFlags.size > 0)
    for (const side of sides) {
      const f = vsFirst[side]!;
      const s = perSide[side]!;
      console.log(
        `RESULT side ${side} (${sideFlags.get(side)}): p99 ${lag[side]!.join('/')} ms (median ${median(lag[side]!)}), ` +
          `${s.rate.join('/')}/s, worker RSS idle ${s.idle.join('/')} peak ${s.peak.join('/')} MiB; over ${a}, median of ` +
          `rounds: p99 ${round(median(f.p99), 3)}× (${f.p99.map((x) => round(x, 2)).join(', ')}), ` +
          `rate ${round(median(f.rate), 3)}×, peak RSS ${round(median(f.peak), 3)}×`,
      );
    }
} finally {
  await sink.close();
  await redis.stop();
}
process.exit(0);
