/**
 * `node bench/src/api-after-posts.ts [seconds]`: a cached `GET /v1/jobs/{id}` before and after a
 * shot of creates on the same api process, beside hello-world, with the transactions the api's
 * database committed during each GET shot (`pg_stat_database.xact_commit`): a GET the job cache
 * answers commits none, one that reads Postgres commits one. Tells whether creates leave the
 * cache unable to fill (the full run measures its GETs right after its POSTs).
 */
import autocannon from 'autocannon';
import pg from 'pg';
import { startHello } from './api-bench.ts';
import { loadNow } from './machine.ts';
import { deploy, seedApiReads } from './tickwork.ts';

const seconds = Number(process.argv[2] ?? 5);
const tw = await deploy({ redisUrl: 'redis://127.0.0.1:6379', workers: 0, label: 'tw_bench_after_posts' });
const hello = await startHello();
const client = new pg.Client({ connectionString: tw.db.url });
try {
  await client.connect();
  const service = await tw.service('bench-after-posts', 10_000_000);
  const auth = { authorization: `Bearer ${service.token}`, 'content-type': 'application/json' };
  const { draft, ids } = await seedApiReads(tw, service);
  let next = 0;
  let unique = 0;
  const commits = async () =>
    Number(
      (await client.query('SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()')).rows[0]
        .xact_commit,
    );
  const get = async (label: string) => {
    const before = await commits();
    const result = await autocannon({
      url: tw.api.url,
      connections: 50,
      duration: seconds,
      requests: [
        { method: 'GET', headers: auth, setupRequest: (r) => ({ ...r, path: `/v1/jobs/${ids[next++ % 200]}` }) },
      ],
    });
    // Statistics reach pg_stat_database within a second of a transaction's end.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const committed = (await commits()) - before;
    const helloShot = await autocannon({ url: hello.url, connections: 50, duration: seconds });
    const ratio = result.requests.average / helloShot.requests.average;
    console.log(
      `${label.padEnd(22)} GET ${Math.round(result.requests.average)} req/s (hello ${Math.round(helloShot.requests.average)}, ` +
        `ratio ${Math.round(ratio * 1000) / 1000}) p99 ${result.latency.p99} ms, ${committed} transactions committed for ` +
        `${result.requests.total} GETs; load ${loadNow()}`,
    );
  };
  await autocannon({ url: hello.url, connections: 50, duration: 1 });
  await get('before any create');
  const posts = await autocannon({
    url: tw.api.url,
    connections: 50,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        path: '/v1/jobs',
        headers: auth,
        setupRequest: (r) => ({ ...r, body: JSON.stringify(draft(`after-${unique++}`)) }),
      },
    ],
  });
  console.log(`creates: ${posts.requests.total} in ${seconds} s (non2xx ${posts.non2xx})`);
  await get('right after creates');
  await get('again');
} finally {
  await client.end();
  hello.child.kill('SIGTERM');
  await tw.close();
}
