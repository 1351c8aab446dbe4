/**
 * `node bench/src/api-one.ts <post|get|list|runs> [node options for the api]`: one api endpoint under
 * autocannon (50 connections, 5 s, after a 1 s warm-up) on a deployment of its own, with what
 * the api's Postgres connections were doing, sampled every 100 ms from pg_stat_activity (a lock
 * wait shows as `Lock:transactionid`, a connection waiting on the api as `Client:ClientRead`).
 * A quick A/B of one lever: run it for each side, interleaved, under the bench lock. Pass
 * `"--cpu-prof --cpu-prof-dir=<dir>"` for a CPU profile of the api. Prints the api's peak RSS too
 * (`VmHWM`) and its CPU seconds per second of the shot, with those of every `postgres` and `redis-server` process of
 * the box (other work on them counts too) and all three per request: with `TICKWORK_NODE_FLAGS=…` an A/B of the
 * process flags; with `BENCH_RATE=17 BENCH_SECONDS=60` what it needs at the seed's load (add
 * `BENCH_PACE=even` for requests at a steady rate instead of autocannon's per-second bursts).
 */
import autocannon from 'autocannon';
import pg from 'pg';
import { deploy, seedApiReads } from './tickwork.ts';
import { pacedFrom, pacedShot } from './api-paced.ts';
import { cpuSecondsOf, pidsNamed, rssOf } from './machine.ts';
import { round } from './stats.ts';

/** `BENCH_PACE=even` with `BENCH_RATE`: the shot open loop at a steady rate (`api-paced.ts`), not autocannon's bursts. */
async function pacedAsAutocannon(opts: autocannon.Options, rate: number, seconds: number) {
  const { origin, next } = pacedFrom(opts);
  const shot = await pacedShot(origin, next, rate, seconds);
  return { requests: { average: shot.reqPerSec }, latency: { p50: shot.p50, p99: shot.p99 }, non2xx: shot.errors };
}

/** CPU seconds of every process named `name` (all of Postgres's backends and helpers, say). */
const cpuSecondsNamed = (name: string) =>
  pidsNamed(name)
    .map(cpuSecondsOf)
    .filter(Number.isFinite)
    .reduce((a, b) => a + b, 0);
/** `BENCH_RATE=17 BENCH_SECONDS=60`: the shot at that overall rate for that long (the seed's load: 1,000/min). */
const rate = process.env.BENCH_RATE ? Number(process.env.BENCH_RATE) : undefined;
const seconds = Number(process.env.BENCH_SECONDS ?? 5);

const which = process.argv[2] ?? 'post';
const nodeOptions = process.argv[3];
const tw = await deploy({ redisUrl: 'redis://127.0.0.1:6379', workers: 0, label: 'tw_bench_one', nodeOptions });
try {
  const service = await tw.service('bench-one', 10_000_000);
  const auth = { authorization: `Bearer ${service.token}`, 'content-type': 'application/json' };
  const { draft, ids: seededIds, runsJob } = await seedApiReads(tw, service);
  let unique = 0;
  let next = 0;
  const opts: autocannon.Options =
    which === 'post'
      ? {
          url: tw.api.url,
          requests: [
            {
              method: 'POST',
              path: '/v1/jobs',
              headers: auth,
              setupRequest: (r) => ({ ...r, body: JSON.stringify(draft(`c-${unique++}`)) }),
            },
          ],
        }
      : which === 'list'
        ? { url: `${tw.api.url}/v1/jobs?limit=100`, headers: auth }
        : which === 'runs'
          ? { url: `${tw.api.url}/v1/jobs/${runsJob}/runs`, headers: auth }
          : {
              url: tw.api.url,
              requests: [
                {
                  method: 'GET',
                  headers: auth,
                  setupRequest: (r) => ({ ...r, path: `/v1/jobs/${seededIds[next++ % 200]}` }),
                },
              ],
            };
  await autocannon({ ...opts, connections: 50, duration: 1 });
  const client = new pg.Client({ connectionString: tw.db.url });
  await client.connect();
  const waits = new Map<string, number>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { rows } = await client.query(
        `SELECT state, coalesce(wait_event_type,'-')||':'||coalesce(wait_event,'-') AS w, left(query, 40) AS q FROM pg_stat_activity WHERE application_name = 'tickwork-api'`,
      );
      for (const r of rows) waits.set(`${r.state} ${r.w} ${r.q}`, (waits.get(`${r.state} ${r.w} ${r.q}`) ?? 0) + 1);
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  const cpuBefore = cpuSecondsOf(tw.api.child.pid!);
  const pgBefore = cpuSecondsNamed('postgres');
  const redisBefore = cpuSecondsNamed('redis-server');
  const shotStarted = performance.now();
  const paced = rate !== undefined && process.env.BENCH_PACE === 'even';
  const result = paced
    ? await pacedAsAutocannon(opts, rate, seconds)
    : await autocannon({
        ...opts,
        connections: 50,
        duration: seconds,
        ...(rate === undefined ? {} : { overallRate: rate }),
      });
  const shotSeconds = (performance.now() - shotStarted) / 1000;
  const cpuPerSecond = (cpuSecondsOf(tw.api.child.pid!) - cpuBefore) / shotSeconds;
  const pgPerSecond = (cpuSecondsNamed('postgres') - pgBefore) / shotSeconds;
  const redisPerSecond = (cpuSecondsNamed('redis-server') - redisBefore) / shotSeconds;
  sampling = false;
  await sampler;
  await client.end();
  console.log(
    which,
    Math.round(result.requests.average),
    'req/s p50',
    result.latency.p50,
    'p99',
    result.latency.p99,
    'non2xx',
    result.non2xx,
    'api RSS peak MiB',
    rssOf(tw.api.child.pid!).peakMiB,
    'api CPU s/s',
    round(cpuPerSecond),
    'postgres CPU s/s',
    round(pgPerSecond),
    'redis CPU s/s',
    round(redisPerSecond),
    'CPU ms per request: api',
    round((cpuPerSecond * 1000) / result.requests.average),
    'postgres',
    round((pgPerSecond * 1000) / result.requests.average),
    'redis',
    round((redisPerSecond * 1000) / result.requests.average),
  );
  console.log(
    [...waits]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([k, v]) => `${v}\t${k}`)
      .join('\n'),
  );
} finally {
  await tw.close();
}
