/**
 * Lateness at low load with and without the waker (apps/worker/src/waker.ts), side by side:
 *
 *   node bench/src/wake-ab.ts [--rounds 3] [--hz 10] [--schedules 1000] [--rate 200] [--measure-s 10]
 *                             [--before-root <checkout> | --b-env KEY=VALUE…] [--dump <dir>]
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
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
const [a, b] = beforeRoot
  ? (['before', 'after'] as const)
  : values['b-env']
    ? (['A', 'B'] as const)
    : (['off', 'on'] as const);
type Side = typeof a | typeof b;
const lag: Record<string, number[]> = { [a]: [], [b]: [] };
const ratios: number[] = [];
try {
  for (let r = 0; r < Number(values.rounds); r++) {
    const shot: Partial<Record<Side, number>> = {};
    for (const side of rotated<Side>([a, b], r)) {
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
        ...(side === 'before' ? { env: { TICKWORK_ROOT: beforeRoot! } } : {}),
        ...(side === 'B' ? { env: bEnv } : {}),
        ...(values.dump
          ? {
              onWindow: (details: WindowDetails) => {
                mkdirSync(values.dump!, { recursive: true });
                writeFileSync(join(values.dump!, `${side}-r${r + 1}.json`), JSON.stringify(details));
              },
            }
          : {}),
      });
      shot[side] = figures.lagP99Ms;
      lag[side]!.push(figures.lagP99Ms);
      const cpu = figures.cpuPercentOfOneCore;
      console.log(
        `  round ${r + 1} waker ${side.padEnd(6)}: lag p50/p95/p99 ${figures.lagP50Ms}/${figures.lagP95Ms}/${figures.lagP99Ms} ms, ` +
          `${figures.deliveriesPerSec}/s, lost ${figures.lost}, duplicates ${figures.duplicates}; CPU % of a core ` +
          `worker ${cpu['worker 1']} redis ${cpu.redis} postgres ${cpu.postgres} box ${cpu.box} (load ${load})`,
      );
    }
    ratios.push(shot[b]! / shot[a]!);
  }
  console.log(
    `RESULT wake hz${hz}: lag p99 ${a} ${lag[a]!.join('/')} ms, ${b} ${lag[b]!.join('/')} ms; ` +
      `median ${a} ${median(lag[a]!)} ${b} ${median(lag[b]!)} ms; ${b}/${a} ${round(median(ratios), 3)}×`,
  );
} finally {
  await sink.close();
  await redis.stop();
}
process.exit(0);
