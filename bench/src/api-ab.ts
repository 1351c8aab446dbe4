/**
 * `node bench/src/api-ab.ts --side <label|root|flags> --side … [--only get,list,runs] [--rounds 3]
 * [--duration 5]`: api processes side by side in one run, on one database and one Redis prefix (the
 * same seeded jobs and key), with hello-world in every round. A side is `label|root|flags`: `root`
 * another checkout whose built code it runs (`TICKWORK_ROOT`; empty: this one), `flags` its Node
 * flags (`TICKWORK_NODE_FLAGS`; absent: the shipped ones of `infra/node/launch.sh`, `-`: none).
 * Every shot is autocannon, 50 connections, after a 1 s warm-up of each; the order rotates each
 * round. Prints per round req/s and p99, then medians of the per-round ratios to hello-world and
 * to the first side, and each side's peak RSS (`VmHWM`) over the whole run.
 *
 *   code A/B:  --side "base|/tmp/base-checkout" --side "new"
 *   flags A/B: --side "shipped" --side "mid||--max-old-space-size=160" --side "none||-"
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type autocannon from 'autocannon';
import { freePort, startApi, type FleetEnv, type Proc } from '@tickwork/testkit';
import { loadNow, rssOf } from './machine.ts';
import { shoot } from './api-bench.ts';
import { median, rotated, round } from './stats.ts';
import { deploy, seedApiReads } from './tickwork.ts';

const { values: args } = parseArgs({
  options: {
    side: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    only: { type: 'string', default: 'get' },
  },
});
const rounds = Number(args.rounds);
const duration = Number(args.duration);
const sides = (args.side ?? ['new']).map((spec) => {
  const [label, root = '', flags] = spec.split('|');
  return { label: label!, root, flags: flags === undefined ? undefined : flags === '-' ? '' : flags };
});
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const tw = await deploy({ redisUrl, workers: 0, label: 'tw_bench_ab' });
const procs: Proc[] = [];
let hello: ReturnType<typeof fork> | undefined;
try {
  const service = await tw.service('bench-ab', 10_000_000);
  const auth = { authorization: `Bearer ${service.token}`, 'content-type': 'application/json' };
  const { ids, runsJob } = await seedApiReads(tw, service);
  // The deployment's own api is only the seeding's: every side is a process of its own.
  await tw.api.stop();
  for (const side of sides) {
    const env: FleetEnv = { ...tw.env };
    if (side.root) env.TICKWORK_ROOT = side.root;
    if (side.flags !== undefined) env.TICKWORK_NODE_FLAGS = side.flags;
    procs.push(await startApi(env, { from: 'dist' }));
  }
  const helloPort = await freePort();
  hello = fork(fileURLToPath(new URL('./hello-server.ts', import.meta.url)), [], {
    env: { ...process.env, PORT: String(helloPort) },
  });
  const [message] = (await once(hello, 'message')) as [{ type: string }];
  if (message.type !== 'ready') throw new Error('hello-world server did not start');

  let next = 0;
  const endpoints: Record<string, (url: string) => autocannon.Options> = {
    get: (url) => ({
      url,
      requests: [
        { method: 'GET', headers: auth, setupRequest: (r) => ({ ...r, path: `/v1/jobs/${ids[next++ % 200]}` }) },
      ],
    }),
    list: (url) => ({ url: `${url}/v1/jobs?limit=100`, headers: auth }),
    runs: (url) => ({ url: `${url}/v1/jobs/${runsJob}/runs`, headers: auth }),
  };
  const shots: Record<string, () => autocannon.Options> = { hello: () => ({ url: `http://127.0.0.1:${helloPort}` }) };
  for (const endpoint of args.only.split(',')) {
    sides.forEach((side, i) => {
      shots[`${endpoint} ${side.label}`] = () => endpoints[endpoint]!(procs[i]!.url);
    });
  }
  const names = Object.keys(shots);
  const shootNamed = (name: string, seconds: number) =>
    shoot({ ...shots[name]!(), connections: 50, duration: seconds });
  for (const name of names) await shootNamed(name, 1);
  const per: Record<string, { reqPerSec: number[]; toHello: number[]; toFirst: number[]; p99: number[] }> = {};
  for (const name of names) per[name] = { reqPerSec: [], toHello: [], toFirst: [], p99: [] };
  for (let r = 0; r < rounds; r++) {
    console.log(`round ${r + 1}/${rounds}, load ${loadNow()}`);
    const got: Record<string, number> = {};
    for (const name of rotated(names, r)) {
      const shot = await shootNamed(name, duration);
      got[name] = shot.reqPerSec;
      per[name]!.reqPerSec.push(shot.reqPerSec);
      per[name]!.p99.push(shot.p99);
      const errors = shot.errors ? ` errors ${shot.errors}` : '';
      console.log(
        `  ${name.padEnd(24)} ${String(Math.round(shot.reqPerSec)).padStart(6)} req/s p99 ${shot.p99} ms${errors}`,
      );
    }
    for (const name of names) {
      per[name]!.toHello.push(got[name]! / got.hello!);
      const first = name === 'hello' ? 'hello' : `${name.split(' ')[0]} ${sides[0]!.label}`;
      per[name]!.toFirst.push(got[name]! / got[first]!);
    }
  }
  console.log(`\nmedians over ${rounds} rounds (load ${loadNow()} at the end):`);
  for (const name of names) {
    const f = per[name]!;
    console.log(
      `  ${name.padEnd(24)} ${String(Math.round(median(f.reqPerSec))).padStart(6)} req/s  /hello ${round(median(f.toHello), 3)}` +
        `  /${sides[0]!.label} ${round(median(f.toFirst), 3)}  p99 ${median(f.p99)} ms`,
    );
  }
  sides.forEach((side, i) => {
    const pid = procs[i]!.child.pid;
    console.log(`  ${side.label}: peak RSS ${pid === undefined ? '?' : rssOf(pid).peakMiB} MiB`);
  });
} finally {
  if (hello) {
    hello.kill('SIGTERM');
    await once(hello, 'exit');
  }
  await Promise.allSettled(procs.map((p) => p.stop()));
  await tw.close();
}
