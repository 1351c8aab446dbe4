/**
 * API bench: autocannon against one real api process (local Postgres and Redis), and in the same
 * run a bare Fastify hello-world on the same Node as the ceiling. Each round measures hello-world
 * and every endpoint in a rotated order; a figure is the median over rounds of the per-round ratio
 * (of an even count, the mean of the middle two: `median` of `stats.ts` takes the lower, so two
 * rounds reported their worse one), and the per-round ratios are kept beside it.
 * Then each endpoint runs again at half its peak rate for the p99 an operator would see: once
 * with autocannon's `overallRate` (per-second bursts) and once evenly paced, open loop (`api-paced.ts`).
 * `POST /v1/jobs (50 services)` spreads the creates over 50 services, one key each, in turn.
 * Last, with `instances`, the same endpoints behind the fleet's nginx (`startFleet` of the test
 * kit) with 1, 2, 3 api processes on the same database, hello-world beside them in each round.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { freePort, startFleet } from '@tickwork/testkit';
import { cpuSecondsOf, loadNow } from './machine.ts';
import { pacedFrom, pacedShot } from './api-paced.ts';
import { median, rotated, round } from './stats.ts';
import { deploy, seedApiReads } from './tickwork.ts';

/** The median; of an even count, the mean of the middle two (not the lower, as `median` takes). */
export function midpoint(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const half = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[half]! : (sorted[half - 1]! + sorted[half]!) / 2;
}

export interface ApiOptions {
  redisUrl: string;
  rounds: number;
  durationS: number;
  connections: number;
  nodeOptions?: string | undefined;
  /** api processes behind nginx to measure after the one-process part, e.g. [1, 2, 3]. @defaultValue [] */
  instances?: number[];
}

export interface FleetFigures {
  apis: number;
  helloReqPerSec: number;
  endpoints: Array<{ name: string; reqPerSec: number; ratioToHello: number; p99Ms: number; errors: number }>;
  load: string;
}

export interface EndpointFigures {
  name: string;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  ratioToHello: number;
  /** The ratio to hello-world in each round, in round order. */
  ratiosByRound: number[];
  halfRate: number;
  halfRateP50Ms: number;
  halfRateP99Ms: number;
  /** The same rate open loop, evenly paced (`api-paced.ts`): the p99 the goal means. */
  pacedP50Ms: number;
  pacedP99Ms: number;
  /** How late the pacer itself sent (p99): above a few ms the load generator, not the api, set the tail. */
  pacedLateP99Ms: number;
  errors: number;
}

export interface ApiFigures {
  helloReqPerSec: number;
  helloP99Ms: number;
  endpoints: EndpointFigures[];
  loads: string[];
  fleets: FleetFigures[];
}

export interface Shot {
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  /** With `pids` given to `shootRounds`: the server's CPU time per answered request (µs). */
  cpuUsPerRequest?: number;
}

/** One autocannon shot, one request per connection at a time: its rate, latency and failures. */
export async function shoot(options: autocannon.Options): Promise<Shot> {
  const result = await autocannon({ ...options, pipelining: 1 });
  return {
    reqPerSec: result.requests.total / Math.max(result.duration, 0.001),
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

/** A bare Fastify hello-world in a process of its own, the ceiling every api figure is a ratio to. */
export async function startHello(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = fork(fileURLToPath(new URL('./hello-server.ts', import.meta.url)), [], {
    env: { ...process.env, PORT: String(port) },
  });
  const [message] = (await once(child, 'message')) as [{ type: string }];
  if (message.type !== 'ready') throw new Error('hello-world server did not start');
  return { url: `http://127.0.0.1:${port}`, child };
}

/**
 * Named autocannon shots side by side: each warmed up for 1 s, then `rounds` rounds of `duration` s
 * each, 50 connections, the order rotated each round. Returns each round's shots by name.
 */
export async function shootRounds(
  shots: Record<string, () => autocannon.Options>,
  options: { rounds: number; duration: number; pad?: number; pids?: Record<string, number> },
): Promise<Array<Record<string, Shot>>> {
  const names = Object.keys(shots);
  const shootNamed = async (name: string, seconds: number) => {
    const pid = options.pids?.[name];
    const before = pid === undefined ? 0 : cpuSecondsOf(pid);
    const shot = await shoot({ ...shots[name]!(), connections: 50, duration: seconds });
    // The server's CPU per request: its own work, less swayed than req/s by what else the box runs.
    if (pid !== undefined) shot.cpuUsPerRequest = ((cpuSecondsOf(pid) - before) * 1e6) / (shot.reqPerSec * seconds);
    return shot;
  };
  for (const name of names) await shootNamed(name, 1);
  const byRound: Array<Record<string, Shot>> = [];
  for (let r = 0; r < options.rounds; r++) {
    console.log(`round ${r + 1}/${options.rounds}, load ${loadNow()}`);
    const got: Record<string, Shot> = {};
    for (const name of rotated(names, r)) {
      const shot = await shootNamed(name, options.duration);
      got[name] = shot;
      const errors = shot.errors ? ` errors ${shot.errors}` : '';
      const cpu = shot.cpuUsPerRequest === undefined ? '' : ` cpu ${Math.round(shot.cpuUsPerRequest)} µs/req`;
      console.log(
        `  ${name.padEnd(options.pad ?? 24)} ${String(Math.round(shot.reqPerSec)).padStart(6)} req/s p99 ${shot.p99} ms${cpu}${errors}`,
      );
    }
    byRound.push(got);
  }
  return byRound;
}

export async function benchApi(options: ApiOptions): Promise<ApiFigures> {
  const tw = await deploy({
    redisUrl: options.redisUrl,
    workers: 0,
    label: 'tw_bench_api',
    nodeOptions: options.nodeOptions,
  });
  const hello = await startHello();
  try {
    // Quota raised in the bench's own database: one service creates tens of thousands of jobs here.
    const service = await tw.service('bench-api', 10_000_000);
    const auth = { authorization: `Bearer ${service.token}`, 'content-type': 'application/json' };
    const { draft, ids: seededIds, runsJob } = await seedApiReads(tw, service);
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => tw.service(`bench-api-${i}`, 10_000_000)));
    const manyAuth = many.map((m) => ({ authorization: `Bearer ${m.token}`, 'content-type': 'application/json' }));

    let unique = 0;
    let nextId = 0;
    const endpointsAt = (url: string): Record<string, () => autocannon.Options> => ({
      'POST /v1/jobs': () => ({
        url,
        requests: [
          {
            method: 'POST',
            path: '/v1/jobs',
            headers: auth,
            setupRequest: (request) => ({ ...request, body: JSON.stringify(draft(`c-${process.pid}-${unique++}`)) }),
          },
        ],
      }),
      'POST /v1/jobs (50 services)': () => ({
        url,
        requests: [
          {
            method: 'POST',
            path: '/v1/jobs',
            setupRequest: (request) => {
              const n = unique++;
              return {
                ...request,
                headers: manyAuth[n % manyAuth.length]!,
                body: JSON.stringify(draft(`m-${process.pid}-${n}`)),
              };
            },
          },
        ],
      }),
      'GET /v1/jobs/{id}': () => ({
        url,
        requests: [
          {
            method: 'GET',
            headers: auth,
            setupRequest: (request) => ({ ...request, path: `/v1/jobs/${seededIds[nextId++ % seededIds.length]}` }),
          },
        ],
      }),
      'GET /v1/jobs?limit=100': () => ({ url: `${url}/v1/jobs?limit=100`, headers: auth }),
      'GET /v1/jobs/{id}/runs': () => ({ url: `${url}/v1/jobs/${runsJob}/runs`, headers: auth }),
    });
    const endpoints = endpointsAt(tw.api.url);
    const base = { connections: options.connections, duration: options.durationS };
    // Warm-up: JIT, pools and prepared paths, for both servers, outside the figures.
    await shoot({ ...base, duration: 1, url: hello.url });
    for (const make of Object.values(endpoints)) await shoot({ ...make(), ...base, duration: 1 });

    const names = Object.keys(endpoints);
    const shots: Record<string, Shot[]> = { hello: [] };
    const ratios: Record<string, number[]> = {};
    const loads: string[] = [];
    for (const name of names) {
      shots[name] = [];
      ratios[name] = [];
    }
    for (let r = 0; r < options.rounds; r++) {
      loads.push(loadNow());
      const order = rotated(['hello', ...names], r);
      const roundShots: Record<string, Shot> = {};
      for (const name of order) {
        const shot = await shoot(name === 'hello' ? { ...base, url: hello.url } : { ...endpoints[name]!(), ...base });
        roundShots[name] = shot;
        shots[name]!.push(shot);
        console.log(
          `  api round ${r + 1}/${options.rounds} ${name.padEnd(24)} ${Math.round(shot.reqPerSec)} req/s p50 ${shot.p50} ms p99 ${shot.p99} ms${shot.errors ? ` errors ${shot.errors}` : ''}`,
        );
      }
      for (const name of names) ratios[name]!.push(roundShots[name]!.reqPerSec / roundShots.hello!.reqPerSec);
    }
    const figures: EndpointFigures[] = [];
    for (const name of names) {
      const peak = midpoint(shots[name]!.map((s) => s.reqPerSec));
      const half = Math.max(1, Math.round(peak / 2));
      const at = await shoot({ ...endpoints[name]!(), ...base, overallRate: half });
      console.log(`  api half-rate ${name.padEnd(24)} ${half} req/s offered: p50 ${at.p50} ms p99 ${at.p99} ms`);
      const { origin, next } = pacedFrom(endpoints[name]!());
      const paced = await pacedShot(origin, next, half, options.durationS);
      console.log(
        `  api half-rate paced ${name.padEnd(18)} ${half} req/s due, ${paced.reqPerSec} done: p50 ${paced.p50} ms p99 ${paced.p99} ms (pacer late p99 ${paced.sendLateP99} ms, ${paced.threads} thread(s))${paced.errors ? ` errors ${paced.errors}` : ''}`,
      );
      figures.push({
        name,
        reqPerSec: Math.round(peak),
        p50Ms: median(shots[name]!.map((s) => s.p50)),
        p99Ms: median(shots[name]!.map((s) => s.p99)),
        ratioToHello: round(midpoint(ratios[name]!), 3),
        ratiosByRound: ratios[name]!.map((ratio) => round(ratio, 3)),
        halfRate: half,
        halfRateP50Ms: at.p50,
        halfRateP99Ms: at.p99,
        pacedP50Ms: paced.p50,
        pacedP99Ms: paced.p99,
        pacedLateP99Ms: paced.sendLateP99,
        errors: shots[name]!.reduce((sum, s) => sum + s.errors, 0) + at.errors + paced.errors,
      });
    }
    const fleets: FleetFigures[] = [];
    for (const apis of options.instances ?? []) {
      const fleet = await startFleet({ apis, workers: 0, env: tw.env, from: 'dist' });
      try {
        const at = endpointsAt(fleet.url);
        for (const make of Object.values(at)) await shoot({ ...make(), ...base, duration: 1 });
        const load = loadNow();
        const helloShot = await shoot({ ...base, url: hello.url });
        const rows: FleetFigures['endpoints'] = [];
        for (const name of names) {
          const shot = await shoot({ ...at[name]!(), ...base });
          rows.push({
            name,
            reqPerSec: Math.round(shot.reqPerSec),
            ratioToHello: round(shot.reqPerSec / helloShot.reqPerSec, 3),
            p99Ms: shot.p99,
            errors: shot.errors,
          });
          const errors = shot.errors ? ` errors ${shot.errors}` : '';
          const figures = `${Math.round(shot.reqPerSec)} req/s p99 ${shot.p99} ms${errors}`;
          console.log(`  api ×${apis} behind nginx ${name.padEnd(28)} ${figures}`);
        }
        fleets.push({ apis, helloReqPerSec: Math.round(helloShot.reqPerSec), endpoints: rows, load });
      } finally {
        await fleet.stop();
      }
    }
    return {
      helloReqPerSec: Math.round(midpoint(shots.hello!.map((s) => s.reqPerSec))),
      helloP99Ms: median(shots.hello!.map((s) => s.p99)),
      endpoints: figures,
      loads,
      fleets,
    };
  } finally {
    hello.child.kill('SIGTERM');
    await tw.close();
  }
}
