/**
 * Idle memory of the api and the worker, with and without one setting, side by side:
 * `node bench/src/idle-rss.ts [--env NAME=value …] [--rounds 3] [--settle-ms 3000]`.
 * Each round starts an api and a worker of the default kind (the built code, as it ships: dist/
 * through infra/node/launch.sh) and of the variant (order rotated), waits for /health/ready and
 * `settle-ms` more, and reads VmRSS and VmHWM from /proc. Variants: `--env TICKWORK_SOURCES=1`
 * (the TypeScript sources), `--env TICKWORK_NODE_FLAGS=` (no Node flags), `--env
 * TICKWORK_ROOT=<another checkout>` (that checkout's code, e.g. an older commit's).
 * Uses the local Postgres (a database of its own) and Redis (a prefix of its own).
 */
import { parseArgs } from 'node:util';
import { createTestDatabase, startApi, startWorker, type FleetEnv, deletePrefix } from '@tickwork/testkit';
import { loadNow, rssOf } from './machine.ts';
import { median, rotated, sleep } from './stats.ts';

const { values } = parseArgs({
  options: {
    env: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '3' },
    'settle-ms': { type: 'string', default: '3000' },
  },
});
const variantEnv = Object.fromEntries(
  (values.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const rounds = Number(values.rounds);
const settleMs = Number(values['settle-ms']);

const db = await createTestDatabase('tw_bench_rss');
const env: FleetEnv = {
  DATABASE_URL: db.url,
  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  BULLMQ_PREFIX: `{twbench_rss_${Date.now().toString(36)}}`,
  LOG_LEVEL: 'warn',
};
type Figures = { apiRss: number; apiPeak: number; workerRss: number; workerPeak: number };
const figures: Record<'A' | 'B', Figures[]> = { A: [], B: [] };
console.log(
  `idle RSS: default (A) vs ${JSON.stringify(variantEnv)} (B), ${rounds} round(s), settle ${settleMs} ms, load ${loadNow()}`,
);
try {
  for (let r = 0; r < rounds; r++) {
    for (const variant of rotated<'A' | 'B'>(['A', 'B'], r)) {
      const extra = variant === 'B' ? variantEnv : {};
      const api = await startApi({ ...env, ...extra }, { from: 'dist' });
      const worker = await startWorker({ ...env, ...extra }, { from: 'dist' });
      try {
        await sleep(settleMs);
        const a = rssOf(api.child.pid!);
        const w = rssOf(worker.child.pid!);
        const f = { apiRss: a.rssMiB, apiPeak: a.peakMiB, workerRss: w.rssMiB, workerPeak: w.peakMiB };
        figures[variant].push(f);
        console.log(
          `  round ${r + 1} ${variant}: api ${f.apiRss} MiB (peak ${f.apiPeak}), worker ${f.workerRss} MiB (peak ${f.workerPeak}); load ${loadNow()}`,
        );
      } finally {
        await Promise.all([api.stop(), worker.stop()]);
      }
    }
  }
  for (const variant of ['A', 'B'] as const) {
    const m = (k: keyof Figures) => median(figures[variant].map((f) => f[k]));
    console.log(
      `median ${variant}: api ${m('apiRss')} MiB (peak ${m('apiPeak')}), worker ${m('workerRss')} MiB (peak ${m('workerPeak')})`,
    );
  }
} finally {
  await db.drop().catch(() => {});
  await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX).catch(() => {});
}
process.exit(0);
