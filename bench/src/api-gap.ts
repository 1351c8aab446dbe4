/**
 * `node bench/src/api-gap.ts [--rounds 3] [--duration 5] [--only get,list,runs]`: why a read measured
 * right after creates is slower. Two api processes on one database: `A` takes a shot of creates
 * each round, `B` never does. Each round measures hello-world and each read endpoint on both
 * processes while the box is quiet, then `A` creates for `duration` s, then the same shots again at
 * once (the order rotated each round, so each shot is the first after the creates in some round).
 * Each shot prints the CPU (% of a core) of `A`, `B`, Postgres, Redis and the whole box, and the
 * box's steal. A read that drops on `A` only is the process's state after the creates (its heap,
 * its GC); one that drops on both is the database's or the box's (Postgres still busy after the
 * writes); one whose hello drops too is the host.
 */
import type { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type autocannon from 'autocannon';
import { startApi, type Proc } from '@tickwork/testkit';
import { cpuWindow, loadNow, pidsNamed, rssOf } from './machine.ts';
import { shoot, startHello } from './api-bench.ts';
import { median, rotated, round } from './stats.ts';
import { deploy, seedApiReads } from './tickwork.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    only: { type: 'string', default: 'get' },
  },
});
const rounds = Number(args.rounds);
const duration = Number(args.duration);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Steal ticks of the box so far (/proc/stat's first line, its eighth number). */
const stealTicks = () => Number(readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/)[8] ?? 0);

const tw = await deploy({ redisUrl, workers: 0, label: 'tw_bench_gap' });
let other: Proc | undefined;
let hello: ReturnType<typeof fork> | undefined;
try {
  const service = await tw.service('bench-gap', 10_000_000);
  const auth = { authorization: `Bearer ${service.token}`, 'content-type': 'application/json' };
  const { draft, ids, runsJob } = await seedApiReads(tw, service);
  other = await startApi(tw.env, { from: 'dist' });
  const procs = { A: tw.api, B: other };
  const started = await startHello();
  hello = started.child;

  let next = 0;
  let unique = 0;
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
  const shots: Record<string, () => autocannon.Options> = { hello: () => ({ url: started.url }) };
  for (const endpoint of args.only.split(',')) {
    for (const [label, proc] of Object.entries(procs))
      shots[`${endpoint} ${label}`] = () => endpoints[endpoint]!(proc.url);
  }
  const names = Object.keys(shots);
  const roles = {
    A: () => [tw.api.child.pid!],
    B: () => [other!.child.pid!],
    postgres: () => pidsNamed('postgres'),
    redis: () => pidsNamed('redis-server'),
  };
  const measured = async (name: string, options: autocannon.Options) => {
    const cpu = cpuWindow(roles);
    const steal0 = stealTicks();
    const started = performance.now();
    const shot = await shoot({ ...options, connections: 50, duration });
    const seconds = (performance.now() - started) / 1000;
    const used = cpu();
    const steal = Math.round((stealTicks() - steal0) / seconds);
    const cpus = Object.entries(used)
      .map(([role, share]) => `${role} ${share}`)
      .join(', ');
    const errors = shot.errors ? ` errors ${shot.errors}` : '';
    console.log(
      `  ${name.padEnd(20)} ${String(Math.round(shot.reqPerSec)).padStart(6)} req/s p99 ${shot.p99} ms${errors}` +
        ` | CPU %: ${cpus}, steal ${steal}%`,
    );
    return shot.reqPerSec;
  };
  for (const name of names) await shoot({ ...shots[name]!(), connections: 50, duration: 1 });
  const phases = ['quiet', 'after creates'] as const;
  const toHello: Record<string, number[]> = {};
  const got: Record<string, number[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const phase of phases) {
      if (phase === 'after creates') {
        const posts = await shoot({
          url: tw.api.url,
          connections: 50,
          duration,
          requests: [
            {
              method: 'POST',
              path: '/v1/jobs',
              headers: auth,
              setupRequest: (q) => ({ ...q, body: JSON.stringify(draft(`gap-${unique++}`)) }),
            },
          ],
        });
        console.log(`round ${r + 1}: ${Math.round(posts.reqPerSec * duration)} creates through A, then at once:`);
      } else {
        console.log(`round ${r + 1}/${rounds}, ${phase}, load ${loadNow()}`);
      }
      const phaseGot: Record<string, number> = {};
      for (const name of rotated(names, r)) phaseGot[name] = await measured(name, shots[name]!());
      for (const name of names) {
        const key = `${name} ${phase}`;
        got[key] = [...(got[key] ?? []), phaseGot[name]!];
        toHello[key] = [...(toHello[key] ?? []), phaseGot[name]! / phaseGot.hello!];
      }
    }
  }
  console.log(`\nmedians over ${rounds} rounds (load ${loadNow()} at the end):`);
  for (const name of names) {
    const line = phases
      .map((phase) => {
        const key = `${name} ${phase}`;
        return `${phase}: ${Math.round(median(got[key]!))} req/s, /hello ${round(median(toHello[key]!), 3)}`;
      })
      .join('; ');
    const drop = got[`${name} after creates`]!.map((after, i) => after / got[`${name} quiet`]![i]!);
    console.log(`  ${name.padEnd(12)} ${line}; after/quiet by round ${drop.map((d) => round(d, 2)).join(', ')}`);
  }
  console.log(`  peak RSS: A ${rssOf(tw.api.child.pid!).peakMiB} MiB, B ${rssOf(other.child.pid!).peakMiB} MiB`);
} finally {
  if (hello) {
    hello.kill('SIGTERM');
    await once(hello, 'exit');
  }
  await other?.stop();
  await tw.close();
}
