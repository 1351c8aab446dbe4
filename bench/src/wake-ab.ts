/**
 * Lateness at low load with and without the waker (apps/worker/src/waker.ts), side by side:
 *
 *   node bench/src/wake-ab.ts [--rounds 3] [--hz 10] [--schedules 1000] [--rate 200] [--measure-s 10]
 *
 * Each round runs quick mode's fire-at-rate part (a Redis of its own at `hz`, one worker, the
 * sink) twice, once with `TICKWORK_WAKE=off` and once as shipped, in rotated order; the figure is
 * each side's lateness p99 (sink receive − scheduled instant) and the median of the per-round
 * ratios.
 */
import { parseArgs } from 'node:util';
import { startSink } from '@tickwork/testkit';
import { fireAtRate } from './fire-bench.ts';
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
  },
});
const hz = Number(values.hz);
const sink = await startSink();
const redis = await startRedis(hz);
const lag: Record<'off' | 'on', number[]> = { off: [], on: [] };
const ratios: number[] = [];
try {
  for (let r = 0; r < Number(values.rounds); r++) {
    const shot: Partial<Record<'off' | 'on', number>> = {};
    for (const side of rotated<'off' | 'on'>(['off', 'on'], r)) {
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
      });
      shot[side] = figures.lagP99Ms;
      lag[side].push(figures.lagP99Ms);
      console.log(
        `  round ${r + 1} waker ${side.padEnd(3)}: lag p50/p95/p99 ${figures.lagP50Ms}/${figures.lagP95Ms}/${figures.lagP99Ms} ms, ` +
          `${figures.deliveriesPerSec}/s, lost ${figures.lost}, duplicates ${figures.duplicates} (load ${load})`,
      );
    }
    ratios.push(shot.on! / shot.off!);
  }
  console.log(
    `RESULT wake hz${hz}: lag p99 off ${lag.off.join('/')} ms, on ${lag.on.join('/')} ms; ` +
      `median off ${median(lag.off)} on ${median(lag.on)} ms; on/off ${round(median(ratios), 3)}×`,
  );
} finally {
  await sink.close();
  await redis.stop();
}
process.exit(0);
