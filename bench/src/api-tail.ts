/**
 * `node bench/src/api-tail.ts [--seconds 20] [--shots list@17,bare-list@17,list@525,…] [--flags "…"]`:
 * where a paced request's time goes (`api-paced.ts`, open loop at a steady rate). Each shot is
 * one endpoint at one rate, and prints, side by side:
 *
 * - the client's p50/p99 (from the request's due instant) and the pacer's own lateness and event-loop
 *   delay p99 (its own measure of its own lag: a late pacer is the load generator's tail, not the api's);
 * - the api's own time for the same requests, from its `http_request_duration_seconds` histogram
 *   (the bucket the median and the 99th request fall in): from the first byte read to the last written;
 * - the api's GC pauses during the shot (`--trace-gc` on the api: count, sum, the largest);
 * - one `ss -tin` look at the api's connections halfway through (rtt, ato, cwnd, unacked bytes):
 *   a delayed-ACK stall shows as the answers' time on the wire, not in the api's histogram.
 *
 * Shots: `list`, `runs`, `get` (the api), `bare-list`, `bare-runs`, `bare-get` (the same bodies from
 * memory in a bare Fastify process, `api-bare-server.ts`: the transport and the client alone).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadNow } from './machine.ts';
import { pacedShot, type PacedRequest } from './api-paced.ts';
import { deploy, seedApiReads, startBareServer } from './tickwork.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    shots: { type: 'string', default: 'list@17,bare-list@17,get@17,bare-get@17' },
    flags: { type: 'string' },
  },
});
const seconds = Number(args.seconds);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
// The api's own flags, read from infra/node/launch.sh (a copy here went stale once), with --trace-gc added.
const launch = readFileSync(new URL('../../infra/node/launch.sh', import.meta.url), 'utf8');
const shipped = /api\)\s+shift\s+flags=\$\{TICKWORK_NODE_FLAGS-"([^"]*)"\}/.exec(launch)?.[1];
if (shipped === undefined) throw new Error("infra/node/launch.sh: the api's flags not found");

const tw = await deploy({
  redisUrl,
  workers: 0,
  label: 'tw_bench_tail',
  env: { TICKWORK_NODE_FLAGS: `${args.flags ?? shipped} --trace-gc` },
});
let bare: Awaited<ReturnType<typeof startBareServer>> | undefined;
try {
  const service = await tw.service('bench-tail', 10_000_000);
  const headers = { authorization: `Bearer ${service.token}` };
  const { ids, runsJob } = await seedApiReads(tw, service);
  bare = await startBareServer(tw, service, redisUrl, {
    get: `/v1/jobs/${ids[1]}`,
    list: '/v1/jobs?limit=100',
    runs: `/v1/jobs/${runsJob}/runs`,
  });
  const bareOrigin = bare.origin;

  let next = 0;
  const get =
    (path: string): (() => PacedRequest) =>
    () => ({ method: 'GET', path, headers });
  const shotsOf: Record<string, { origin: string; route?: string; next: () => PacedRequest }> = {
    list: { origin: tw.api.url, route: '/v1/jobs', next: get('/v1/jobs?limit=100') },
    runs: { origin: tw.api.url, route: '/v1/jobs/:id/runs', next: get(`/v1/jobs/${runsJob}/runs`) },
    get: {
      origin: tw.api.url,
      route: '/v1/jobs/:id',
      next: () => ({ method: 'GET', path: `/v1/jobs/${ids[next++ % 200]}`, headers }),
    },
    'bare-list': { origin: bareOrigin, next: get('/bare/body/list') },
    'bare-runs': { origin: bareOrigin, next: get('/bare/body/runs') },
    'bare-get': { origin: bareOrigin, next: get('/bare/body/get') },
  };

  /** The api's request-duration buckets of one route (cumulative counts by upper bound, seconds). */
  const histogram = async (route: string) => {
    const body = await (await fetch(`${tw.api.url}/metrics`)).text();
    const counts = new Map<string, number>();
    for (const line of body.split('\n')) {
      if (!line.startsWith('http_request_duration_seconds_bucket{') || !line.includes(`route="${route}"`)) continue;
      if (!line.includes('status_code="200"')) continue;
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le) counts.set(le, (counts.get(le) ?? 0) + Number(line.split(' ').pop()));
    }
    return counts;
  };
  /** The bucket (upper bound, ms) the p-th request of a histogram delta falls in. */
  const bucketAt = (before: Map<string, number>, after: Map<string, number>, p: number) => {
    const les = [...after.keys()].filter((le) => le !== '+Inf').sort((a, b) => Number(a) - Number(b));
    const total = (after.get('+Inf') ?? 0) - (before.get('+Inf') ?? 0);
    for (const le of les) {
      if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= (p / 100) * total) return `≤${Number(le) * 1000} ms`;
    }
    return '>max';
  };
  /** GC lines of `--trace-gc` the api printed since `from`: count, summed and largest pause (ms), by kind. */
  const gcSince = (from: number) => {
    const pauses: number[] = [];
    const kinds = new Map<string, { count: number; ms: number }>();
    for (const chunk of tw.api.output.slice(from)) {
      for (const line of chunk.split('\n')) {
        const m =
          /(Scavenge|Mark-Compact|Minor Mark-Sweep)[^,]*MB,(?: pooled: [\d.]+ MB,)?\s*([\d.]+)\s*\/\s*[\d.]+\s*ms/.exec(
            line,
          );
        if (!m) continue;
        pauses.push(Number(m[2]));
        const kind = kinds.get(m[1]!) ?? { count: 0, ms: 0 };
        kind.count++;
        kind.ms += Number(m[2]);
        kinds.set(m[1]!, kind);
      }
    }
    const sum = pauses.reduce((a, b) => a + b, 0);
    const byKind = [...kinds].map(([kind, k]) => `${kind} ${k.count}× ${Math.round(k.ms)} ms`).join(', ');
    return {
      count: pauses.length,
      sumMs: Math.round(sum),
      maxMs: Math.round(Math.max(0, ...pauses) * 10) / 10,
      byKind,
    };
  };
  const ssOf = (targetPort: string) => {
    try {
      const out = execFileSync('ss', ['-tinH', 'state', 'established', `( sport = :${targetPort} )`], {
        encoding: 'utf8',
      });
      // The detail lines of the first few connections: rtt, ato, cwnd, bytes in flight.
      return out
        .split('\n')
        .filter((line) => line.includes('rtt:'))
        .slice(0, 3)
        .map((line) =>
          line
            .trim()
            .split(/\s+/)
            .filter((f) =>
              /^(rtt|ato|cwnd|unacked|lastsnd|lastrcv|lastack|delivery_rate|rcv_space|snd_wnd|mss):/.test(f),
            )
            .join(' '),
        );
    } catch (error) {
      return [`ss failed: ${(error as Error).message}`];
    }
  };

  console.log(`api flags: ${args.flags ?? shipped} (+ --trace-gc); ${seconds} s a shot; load ${loadNow()}`);
  for (const spec of args.shots.split(',')) {
    const [name, rateText] = spec.split('@');
    const shot = shotsOf[name!];
    if (!shot) throw new Error(`unknown shot ${name}`);
    const rate = Number(rateText);
    const before = shot.route ? await histogram(shot.route) : undefined;
    const gcFrom = tw.api.output.length;
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    let ss: string[] = [];
    const look = setTimeout(
      () => {
        ss = ssOf(new URL(shot.origin).port);
      },
      (seconds * 1000) / 2,
    );
    const result = await pacedShot(shot.origin, shot.next, rate, seconds);
    clearTimeout(look);
    loop.disable();
    const server =
      shot.route && before
        ? await histogram(shot.route).then(
            (after) => `api p50 ${bucketAt(before, after, 50)} p99 ${bucketAt(before, after, 99)}`,
          )
        : 'bare';
    const gc = shot.route ? gcSince(gcFrom) : undefined;
    console.log(
      `${spec.padEnd(14)} client p50 ${result.p50} p99 ${result.p99} ms (${result.reqPerSec}/s, errors ${result.errors}); ` +
        `pacer late p99 ${result.sendLateP99} ms (${result.threads} thread(s)), main loop delay p99 ${Math.round(loop.percentile(99) / 1e4) / 100} ms; ` +
        `${server}${gc ? `; api GC ${gc.count} pauses, ${gc.sumMs} ms in all, largest ${gc.maxMs} ms (${gc.byKind})` : ''}; load ${loadNow()}`,
    );
    for (const line of ss) console.log(`    ss: ${line}`);
  }
} finally {
  await bare?.close();
  await tw.close();
}
