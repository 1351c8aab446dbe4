/**
 * `node bench/src/replica.ts [--rounds 3] [--duration 5]`: what read routing costs an api.
 * A Postgres primary and streaming replica of the bench's own (the test kit's `startPgReplica`,
 * replaying at once), the local Redis, and two api processes of the built code on them:
 * `primary` without DATABASE_READ_URL, `replica` with it. Each endpoint is driven by autocannon
 * (50 connections, `--duration` s a shot after 1 s of warm-up) on each side in turn, the order
 * swapped every round. GETs on `replica` are answered by the replica (one Redis MGET for the
 * marks first); POSTs on `replica` pay one `pg_current_wal_insert_lsn()` and one Redis EVAL.
 * Both servers share the machine's 2 cores, so this measures the cost, not a gain.
 */
import autocannon from 'autocannon';
import { createDatabase, migrateToLatest } from '@tickwork/db';
import {
  ADMIN_TOKEN,
  call,
  deletePrefix,
  sampleValue,
  scrape,
  startApi,
  startPgReplica,
  testPrefix,
  type Proc,
} from '@tickwork/testkit';

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}
const rounds = arg('--rounds', 3);
const duration = arg('--duration', 5);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const pair = await startPgReplica({ database: 'tw_bench_replica' });
const prefix = testPrefix();
const apis: Proc[] = [];
try {
  const handle = createDatabase({ url: pair.primary.url(), poolMax: 2 });
  await migrateToLatest(handle.db);
  const common = {
    DATABASE_URL: pair.primary.url(),
    REDIS_URL: redisUrl,
    BULLMQ_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '10000000',
  };
  const primaryOnly = await startApi(common, { from: 'dist' });
  const routed = await startApi({ ...common, DATABASE_READ_URL: pair.replica.url() }, { from: 'dist' });
  apis.push(primaryOnly, routed);
  const created = await call(primaryOnly, 'POST', '/v1/admin/services', {
    token: ADMIN_TOKEN,
    body: { name: 'bench-replica' },
  });
  await handle.db.updateTable('services').set({ max_jobs: 10_000_000 }).where('id', '=', created.body.id).execute();
  await handle.close();
  const token = created.body.apiKey as string;
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const draft = (name: string) => ({ name, schedule: { every: '1h' }, target: { url: 'http://127.0.0.1:9/hook' } });
  const ids: string[] = [];
  for (let i = 0; i < 200; i++)
    ids.push((await call(primaryOnly, 'POST', '/v1/jobs', { token, body: draft(`s-${i}`) })).body.id);
  await pair.caughtUp();

  let unique = 0;
  let next = 0;
  const shot = async (api: Proc, which: string, seconds: number) => {
    const base = { url: api.url, connections: 50, duration: seconds };
    const options: autocannon.Options =
      which === 'post'
        ? {
            ...base,
            requests: [
              {
                method: 'POST',
                path: '/v1/jobs',
                headers,
                setupRequest: (r) => ({ ...r, body: JSON.stringify(draft(`c-${unique++}`)) }),
              },
            ],
          }
        : which === 'list'
          ? { ...base, url: `${api.url}/v1/jobs?limit=100`, headers }
          : {
              ...base,
              requests: [
                { method: 'GET', headers, setupRequest: (r) => ({ ...r, path: `/v1/jobs/${ids[next++ % 200]}` }) },
              ],
            };
    const result = await autocannon(options);
    return { rps: result.requests.average, p99: result.latency.p99, errors: result.errors + result.non2xx };
  };

  const figures: Record<string, Record<string, Array<{ rps: number; p99: number; errors: number }>>> = {};
  for (let round = 0; round < rounds; round++) {
    const order: Array<[string, Proc]> = [
      ['primary', primaryOnly],
      ['replica', routed],
    ];
    if (round % 2 === 1) order.reverse();
    for (const which of ['get', 'list', 'post']) {
      for (const [side, api] of order) {
        await shot(api, which, 1);
        const r = await shot(api, which, duration);
        figures[which] ??= {};
        figures[which][side] ??= [];
        figures[which][side].push(r);
        console.log(
          `round ${round + 1} ${which} ${side}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99} ms, errors ${r.errors}`,
        );
      }
    }
  }
  const metrics = await scrape(routed.url);
  console.log(
    `replica api reads: replica ${sampleValue(metrics, 'tickwork_db_reads_total', { target: 'replica' })},` +
      ` primary ${sampleValue(metrics, 'tickwork_db_reads_total', { target: 'primary' })}`,
  );
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [which, sides] of Object.entries(figures)) {
    const p = median(sides.primary!.map((r) => r.rps));
    const q = median(sides.replica!.map((r) => r.rps));
    console.log(
      `${which}: primary-only ${p.toFixed(0)} req/s (p99 ${median(sides.primary!.map((r) => r.p99))} ms), ` +
        `with replica ${q.toFixed(0)} req/s (p99 ${median(sides.replica!.map((r) => r.p99))} ms), ratio ${(q / p).toFixed(2)}`,
    );
  }
} finally {
  await Promise.allSettled(apis.map((api) => api.stop()));
  await pair.stop();
  await deletePrefix(redisUrl, prefix);
}
