/**
 * `node bench/src/api-ab.ts --side <label|root|flags|env> --side … [--only get,gets,list,runs,post] [--rounds 3]
 * [--duration 5] [--idle-seconds 0] [--seed-seconds 60] [--probe] [--drop-logs]`: api processes side by side in one run, on
 * one database and one Redis prefix (the same seeded jobs and key), with hello-world in every round. A side is
 * `label|root|flags|env`: `root` another checkout whose built code it runs (`TICKWORK_ROOT`; empty: this
 * one), `flags` its Node flags (`TICKWORK_NODE_FLAGS`; absent or empty: the shipped ones of
 * `infra/node/launch.sh`, `-`: none), `env` more environment for it (`NAME=value,NAME=value`, e.g.
 * `MALLOC_ARENA_MAX=2`). Every shot is autocannon, 50 connections, after a 1 s warm-up of each; the
 * order rotates each round. Prints per round req/s, p99 and each server's CPU time per request, then medians
 * of the per-round ratios to hello-world and to the first side (the CPU per request too: a lever's own work,
 * less swayed than req/s by what else the box runs), and each side's peak RSS (`VmHWM`) over the whole run.
 *
 * Memory: each side's RSS is read `--idle-seconds` after it is ready (idle), after `--seed-seconds` of the seed's load
 * (1,000 requests a minute, 17/s at a steady pace, get/list/runs/post in turn, every side at once,
 * before any warm-up: its peak is reset once the side is ready) and at the end (the peak shots), each
 * split by `/proc/<pid>/smaps` (the node binary, other files, anonymous memory). `--probe` adds, from a
 * preload in each api (`mem-probe.mjs`), V8's view at the same moments: heap committed and used by
 * space, external and array buffers, malloc.
 *
 *   code A/B:  --side "base|/tmp/base-checkout" --side "new"
 *   flags A/B: --side "shipped" --side "mid||--max-old-space-size=160" --side "none||-"
 *   env A/B:   --side "shipped" --side "arena2|||MALLOC_ARENA_MAX=2"
 */
import type { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type autocannon from 'autocannon';
import { startApi, type FleetEnv, type Proc } from '@tickwork/testkit';
import { loadNow, rssOf } from './machine.ts';
import { shootRounds, startHello } from './api-bench.ts';
import { pacedShot, type PacedRequest } from './api-paced.ts';
import { median, round, sleep } from './stats.ts';
import { deploy, seedApiReads } from './tickwork.ts';

const { values: args } = parseArgs({
  options: {
    side: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    only: { type: 'string', default: 'get' },
    'seed-seconds': { type: 'string', default: '0' },
    'idle-seconds': { type: 'string', default: '0' },
    probe: { type: 'boolean', default: false },
    // Read each side's stdout and stderr and throw them away once it is ready, instead of keeping
    // them in this process (at LOG_LEVEL=info that is hundreds of MB a run, and this process's
    // CPU on the same two cores).
    'drop-logs': { type: 'boolean', default: false },
  },
});
const rounds = Number(args.rounds);
const duration = Number(args.duration);
const seedSeconds = Number(args['seed-seconds']);
const sides = (args.side ?? ['new']).map((spec) => {
  const [label, root = '', flags, env = ''] = spec.split('|');
  return {
    label: label!,
    root,
    flags: flags === undefined || flags === '' ? undefined : flags === '-' ? '' : flags,
    env: Object.fromEntries(
      env
        .split(',')
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    ),
  };
});
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const probeDir = args.probe ? mkdtempSync(join(tmpdir(), 'tw-mem-probe-')) : undefined;
const MB = 1e6;

/** Resident memory by what backs it, from `/proc/<pid>/smaps` (bytes). */
function smapsOf(pid: number) {
  const groups = { binaryText: 0, binaryData: 0, files: 0, brk: 0, anon: 0, rss: 0 };
  let name = '';
  let perms = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      perms = header[1]!;
      name = header[2] ?? '';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (!rss) continue;
    const bytes = Number(rss[1]) * 1024;
    groups.rss += bytes;
    if (name === '[heap]') groups.brk += bytes;
    else if (name.endsWith('/node') && perms.includes('x')) groups.binaryText += bytes;
    else if (name.endsWith('/node')) groups.binaryData += bytes;
    else if (name.startsWith('/')) groups.files += bytes;
    else groups.anon += bytes;
  }
  return groups;
}

interface ProbeReading {
  at: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  malloced: number;
  physicalHeap: number;
  spaces: Record<string, { size: number; used: number; physical: number }>;
}

/** The probe's reading of a side, taken now (`SIGWINCH`), and its highest-RSS one since the last. */
async function probeOf(pid: number): Promise<{ latest: ProbeReading; peak: ProbeReading } | undefined> {
  if (!probeDir) return undefined;
  const asked = Date.now();
  process.kill(pid, 'SIGWINCH');
  const deadline = asked + 5_000;
  while (Date.now() < deadline) {
    try {
      const read = JSON.parse(readFileSync(join(probeDir, `${pid}.json`), 'utf8'));
      if (read.latest.at >= asked) return read;
    } catch {}
    await sleep(50);
  }
  return undefined;
}

const mb = (bytes: number) => (bytes / MB).toFixed(1);
/** One line of what a side's memory is made of. */
function describeProbe(r: ProbeReading): string {
  const sp = (name: string) => r.spaces[name] ?? { size: 0, used: 0, physical: 0 };
  const young = sp('new_space');
  const old = sp('old_space');
  const code = sp('code_space');
  const large = sp('large_object_space');
  const other = r.physicalHeap - young.physical - old.physical - code.physical - large.physical;
  return (
    `V8 heap ${mb(r.physicalHeap)} resident (${mb(r.heapUsed)} used): ` +
    `young ${mb(young.physical)} (${mb(young.used)}), old ${mb(old.physical)} (${mb(old.used)}), ` +
    `code ${mb(code.physical)} (${mb(code.used)}), large ${mb(large.physical)}, other spaces ${mb(other)}; ` +
    `external ${mb(r.external)} (array buffers ${mb(r.arrayBuffers)}); V8 malloc ${mb(r.malloced)}`
  );
}

/** What a side's memory is at this moment: RSS and peak (MB = 10^6 bytes), smaps groups, the probe's view. */
async function memoryOf(label: string, pid: number, what: string) {
  const { rssMiB, peakMiB } = rssOf(pid);
  const s = smapsOf(pid);
  const probe = await probeOf(pid);
  console.log(
    `  ${label} ${what}: RSS ${mb(s.rss)} MB (${rssMiB} MiB), ` +
      `peak ${round((peakMiB * 1024 * 1024) / MB, 0)} MB (${peakMiB} MiB); ` +
      `node binary ${mb(s.binaryText)} code + ${mb(s.binaryData)} data, other files ${mb(s.files)}, ` +
      `brk heap ${mb(s.brk)}, anonymous ${mb(s.anon)} MB`,
  );
  if (probe) {
    console.log(`    now:  ${describeProbe(probe.latest)}`);
    console.log(`    peak: ${describeProbe(probe.peak)} (at RSS ${mb(probe.peak.rss)} MB)`);
  }
}

/** Resets a process's `VmHWM` to its current RSS (Linux `clear_refs`). */
const resetPeak = (pid: number) => writeFileSync(`/proc/${pid}/clear_refs`, '5');

const tw = await deploy({ redisUrl, workers: 0, label: 'tw_bench_ab' });
const procs: Proc[] = [];
let hello: ReturnType<typeof fork> | undefined;
try {
  const service = await tw.service('bench-ab', 10_000_000);
  const auth = { authorization: `Bearer ${service.token}`, 'content-type': 'application/json' };
  const { draft, ids, runsJob } = await seedApiReads(tw, service);
  // The deployment's own api is only the seeding's: every side is a process of its own.
  await tw.api.stop();
  for (const side of sides) {
    const env: FleetEnv = { ...tw.env, ...side.env };
    if (side.root) env.TICKWORK_ROOT = side.root;
    if (side.flags !== undefined) env.TICKWORK_NODE_FLAGS = side.flags;
    if (probeDir) {
      env.TICKWORK_MEM_PROBE_DIR = probeDir;
      env.NODE_OPTIONS = `--import=${fileURLToPath(new URL('./mem-probe.mjs', import.meta.url))}`;
    }
    const proc = await startApi(env, { from: 'dist' });
    if (args['drop-logs']) {
      for (const stream of [proc.child.stdout, proc.child.stderr]) {
        stream?.removeAllListeners('data');
        stream?.on('data', () => {});
      }
    }
    procs.push(proc);
  }
  const pids = procs.map((p) => p.child.pid!);
  console.log(`sides ready, load ${loadNow()}`);
  // V8's memory reducer runs a while after start when the process allocates little.
  await sleep(Number(args['idle-seconds']) * 1000);
  for (const [i, side] of sides.entries()) await memoryOf(side.label, pids[i]!, 'idle');

  let unique = 0;
  const body = (): string => JSON.stringify(draft(`ab-${process.pid}-${unique++}`));
  if (seedSeconds > 0) {
    for (const pid of pids) resetPeak(pid);
    // The seed's load: 1,000 requests a minute, reads and creates in turn.
    const mix = (k: number): PacedRequest => {
      const kind = k % 4;
      if (kind === 0) return { method: 'GET', path: `/v1/jobs/${ids[k % 200]}`, headers: auth };
      if (kind === 1) return { method: 'GET', path: '/v1/jobs?limit=100', headers: auth };
      if (kind === 2) return { method: 'GET', path: `/v1/jobs/${runsJob}/runs`, headers: auth };
      return { method: 'POST', path: '/v1/jobs', headers: auth, body: body() };
    };
    console.log(`seed's load: 17 requests/s for ${seedSeconds} s on every side at once, load ${loadNow()}`);
    const shots = await Promise.all(
      procs.map((proc) => {
        let k = 0;
        return pacedShot(proc.url, () => mix(k++), 17, seedSeconds);
      }),
    );
    for (const [i, side] of sides.entries()) {
      const shot = shots[i]!;
      console.log(
        `  ${side.label}: ${shot.reqPerSec}/s, p50 ${shot.p50} p99 ${shot.p99} ms, errors ${shot.errors}; ` +
          `load ${loadNow()}`,
      );
    }
    for (const [i, side] of sides.entries()) await memoryOf(side.label, pids[i]!, 'at the seed load');
  }

  // `--rounds 0`: the memory at idle and at the seed's load only.
  if (rounds > 0) {
    const started = await startHello();
    hello = started.child;

    let next = 0;
    const endpoints: Record<string, (url: string) => autocannon.Options> = {
      get: (url) => ({
        url,
        requests: [
          { method: 'GET', headers: auth, setupRequest: (r) => ({ ...r, path: `/v1/jobs/${ids[next++ % 200]}` }) },
        ],
      }),
      // The same 200 GETs as fixed requests: autocannon builds each once instead of one per request
      // (a `setupRequest` rebuilds the request's bytes every time, client CPU on the api's two cores).
      gets: (url) => ({ url, requests: ids.map((id) => ({ method: 'GET', path: `/v1/jobs/${id}`, headers: auth })) }),
      list: (url) => ({ url: `${url}/v1/jobs?limit=100`, headers: auth }),
      runs: (url) => ({ url: `${url}/v1/jobs/${runsJob}/runs`, headers: auth }),
      post: (url) => ({
        url,
        requests: [{ method: 'POST', path: '/v1/jobs', headers: auth, setupRequest: (r) => ({ ...r, body: body() }) }],
      }),
    };
    const shots: Record<string, () => autocannon.Options> = { hello: () => ({ url: started.url }) };
    for (const endpoint of args.only.split(',')) {
      sides.forEach((side, i) => {
        shots[`${endpoint} ${side.label}`] = () => endpoints[endpoint]!(procs[i]!.url);
      });
    }
    const names = Object.keys(shots);
    // Each shot's server, for its CPU per request.
    const pidOf: Record<string, number> = { hello: hello.pid! };
    for (const name of names) {
      const i = sides.findIndex((side) => name.endsWith(` ${side.label}`));
      if (i >= 0) pidOf[name] = pids[i]!;
    }
    const per: Record<
      string,
      { reqPerSec: number[]; toHello: number[]; toFirst: number[]; p99: number[]; cpu: number[]; cpuToFirst: number[] }
    > = {};
    for (const name of names) per[name] = { reqPerSec: [], toHello: [], toFirst: [], p99: [], cpu: [], cpuToFirst: [] };
    for (const got of await shootRounds(shots, { rounds, duration, pids: pidOf })) {
      for (const name of names) {
        per[name]!.reqPerSec.push(got[name]!.reqPerSec);
        per[name]!.p99.push(got[name]!.p99);
        per[name]!.toHello.push(got[name]!.reqPerSec / got.hello!.reqPerSec);
        const first = name === 'hello' ? 'hello' : `${name.split(' ')[0]} ${sides[0]!.label}`;
        per[name]!.toFirst.push(got[name]!.reqPerSec / got[first]!.reqPerSec);
        per[name]!.cpu.push(got[name]!.cpuUsPerRequest ?? Number.NaN);
        per[name]!.cpuToFirst.push(
          (got[name]!.cpuUsPerRequest ?? Number.NaN) / (got[first]!.cpuUsPerRequest ?? Number.NaN),
        );
      }
    }
    console.log(`\nmedians over ${rounds} rounds (load ${loadNow()} at the end):`);
    for (const name of names) {
      const f = per[name]!;
      console.log(
        `  ${name.padEnd(24)} ${String(Math.round(median(f.reqPerSec))).padStart(6)} req/s  /hello ${round(median(f.toHello), 3)}` +
          `  /${sides[0]!.label} ${round(median(f.toFirst), 3)}  p99 ${median(f.p99)} ms` +
          `  cpu ${Math.round(median(f.cpu))} µs/req (/${sides[0]!.label} ${round(median(f.cpuToFirst), 3)})`,
      );
    }
    sides.forEach((side, i) => {
      const peak = rssOf(pids[i]!).peakMiB;
      console.log(`  ${side.label}: peak RSS ${peak} MiB = ${round((peak * 1024 * 1024) / MB, 0)} MB`);
    });
    for (const [i, side] of sides.entries()) await memoryOf(side.label, pids[i]!, 'after the peak shots');
  }
} finally {
  if (hello) {
    hello.kill('SIGTERM');
    await once(hello, 'exit');
  }
  await Promise.allSettled(procs.map((p) => p.stop()));
  await tw.close();
  if (probeDir) rmSync(probeDir, { recursive: true, force: true });
}
