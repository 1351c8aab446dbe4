/**
 * `node bench/src/api-ceiling.ts [--rounds 3] [--duration 5] [--only get,list,runs,post,client]`: each api
 * endpoint beside the bare route that does only the I/O any design of it needs
 * (`api-bare-server.ts`), and hello-world, in one run: the ceiling a design could reach on this
 * box. Every shot is autocannon, 50 connections, no pipelining; the order rotates each round; a
 * figure is the median over rounds of the per-round ratio to hello-world.
 *
 * Pairs: `get` (the api's cached GET) vs `bare get body` (its answer from memory, the same auth
 * parse) and `bare select` (one prepared SELECT); `list` and `runs` vs their bodies from memory;
 * `post` vs `bare insert` (one INSERT and its commit), `bare schedule` (one BullMQ
 * `upsertJobScheduler`) and `bare create` (both, as a create does); `client`: hello-world and the
 * bare GET body with autocannon rebuilding each request (a `setupRequest`, as the api's GET shots
 * rotate their ids) beside the same built once, the generator's share of a GET shot.
 */
import { parseArgs } from 'node:util';
import type autocannon from 'autocannon';
import { loadNow } from './machine.ts';
import { shootRounds } from './api-bench.ts';
import { median, round } from './stats.ts';
import { deploy, seedApiReads, startBareServer } from './tickwork.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    only: { type: 'string' },
  },
});
const rounds = Number(args.rounds);
const duration = Number(args.duration);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const tw = await deploy({ redisUrl, workers: 0, label: 'tw_bench_ceiling' });
let bare: Awaited<ReturnType<typeof startBareServer>> | undefined;
try {
  const service = await tw.service('bench-ceiling', 10_000_000);
  const auth = { authorization: `Bearer ${service.token}`, 'content-type': 'application/json' };
  const { draft, ids: seededIds, runsJob } = await seedApiReads(tw, service);
  bare = await startBareServer(tw, service, redisUrl, {
    get: `/v1/jobs/${seededIds[1]}`,
    list: '/v1/jobs?limit=100',
    runs: `/v1/jobs/${runsJob}/runs`,
  });
  const { bodies, origin: bareUrl } = bare;
  console.log(
    `bodies: get ${bodies.get.length} B, list ${bodies.list.length} B, runs ${bodies.runs.length} B (the api's own)`,
  );

  let unique = 0;
  let next = 0;
  const rotatingGet = (url: string, pathOf: (id: string) => string): autocannon.Options => ({
    url,
    requests: [
      { method: 'GET', headers: auth, setupRequest: (r) => ({ ...r, path: pathOf(seededIds[next++ % 200]!) }) },
    ],
  });
  const posting = (url: string, path: string): autocannon.Options => ({
    url,
    requests: [
      {
        method: 'POST',
        path,
        headers: auth,
        setupRequest: (r) => ({ ...r, body: JSON.stringify(draft(`c-${unique++}`)) }),
      },
    ],
  });
  const groups: Record<string, Record<string, () => autocannon.Options>> = {
    get: {
      'api GET /v1/jobs/{id}': () => rotatingGet(tw.api.url, (id) => `/v1/jobs/${id}`),
      'bare get body': () => ({ url: `${bareUrl}/bare/body/get`, headers: auth }),
      'bare select': () => rotatingGet(bareUrl, (id) => `/bare/select/${id}`),
    },
    list: {
      'api GET /v1/jobs?limit=100': () => ({ url: `${tw.api.url}/v1/jobs?limit=100`, headers: auth }),
      'bare list body': () => ({ url: `${bareUrl}/bare/body/list`, headers: auth }),
    },
    runs: {
      'api GET /v1/jobs/{id}/runs': () => ({ url: `${tw.api.url}/v1/jobs/${runsJob}/runs`, headers: auth }),
      'bare runs body': () => ({ url: `${bareUrl}/bare/body/runs`, headers: auth }),
    },
    // What the generator's own work costs a shot: the same answers with the request rebuilt for
    // every request (`setupRequest`, as the api's GET rotates its ids) against one built once.
    client: {
      'hello, rebuilt': () => ({
        url: bareUrl,
        requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, path: '/' }) }],
      }),
      'bare get body, rebuilt': () => rotatingGet(bareUrl, () => '/bare/body/get'),
      'bare get body': () => ({ url: `${bareUrl}/bare/body/get`, headers: auth }),
    },
    post: {
      'api POST /v1/jobs': () => posting(tw.api.url, '/v1/jobs'),
      'bare insert': () => posting(bareUrl, '/bare/insert'),
      'bare schedule': () => posting(bareUrl, '/bare/schedule'),
      'bare create': () => posting(bareUrl, '/bare/create'),
    },
  };
  const only = args.only?.split(',') ?? Object.keys(groups);
  const shots: Record<string, () => autocannon.Options> = { hello: () => ({ url: bareUrl }) };
  for (const group of only) Object.assign(shots, groups[group]);
  const names = Object.keys(shots);
  const perName: Record<string, { reqPerSec: number[]; ratio: number[]; p99: number[] }> = {};
  for (const name of names) perName[name] = { reqPerSec: [], ratio: [], p99: [] };
  for (const got of await shootRounds(shots, { rounds, duration, pad: 30 })) {
    for (const name of names) {
      perName[name]!.reqPerSec.push(got[name]!.reqPerSec);
      perName[name]!.p99.push(got[name]!.p99);
      perName[name]!.ratio.push(got[name]!.reqPerSec / got.hello!.reqPerSec);
    }
  }
  console.log(`\nmedians over ${rounds} rounds (load ${loadNow()} at the end):`);
  for (const name of names) {
    const f = perName[name]!;
    console.log(
      `  ${name.padEnd(30)} ${String(Math.round(median(f.reqPerSec))).padStart(6)} req/s  ratio ${round(median(f.ratio), 3)}  p99 ${median(f.p99)} ms`,
    );
  }
} finally {
  await bare?.close();
  await tw.close();
}
