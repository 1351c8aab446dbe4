/**
 * API bench: autocannon against one real api process (local Postgres and Redis), and in the same
 * run a bare Fastify hello-world on the same Node as the ceiling. Each round measures hello-world
 * and every endpoint in a rotated order; a figure is the median over rounds of the per-round ratio.
 * Then each endpoint runs again at half its peak rate for the p99 an operator would see.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { uuidv7 } from '@tickwork/core';
import { freePort } from '@tickwork/testkit';
import { loadNow } from './machine.ts';
import { median, rotated, round } from './stats.ts';
import { createJobs, deploy } from './tickwork.ts';

export interface ApiOptions {
  redisUrl: string;
  rounds: number;
  durationS: number;
  connections: number;
  nodeOptions?: string | undefined;
}

export interface EndpointFigures {
  name: string;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  ratioToHello: number;
  halfRate: number;
  halfRateP50Ms: number;
  halfRateP99Ms: number;
  errors: number;
}

export interface ApiFigures {
  helloReqPerSec: number;
  helloP99Ms: number;
  endpoints: EndpointFigures[];
  loads: string[];
}

interface Shot {
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}

async function shoot(options: autocannon.Options): Promise<Shot> {
  const result = await autocannon({ ...options, pipelining: 1 });
  return {
    reqPerSec: result.requests.total / Math.max(result.duration, 0.001),
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

async function startHello(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = fork(fileURLToPath(new URL('./hello-server.ts', import.meta.url)), [], {
    env: { ...process.env, PORT: String(port) },
  });
  const [message] = (await once(child, 'message')) as [{ type: string }];
  if (message.type !== 'ready') throw new Error('hello-world server did not start');
  return { url: `http://127.0.0.1:${port}`, child };
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
    // Far-future start: the api bench measures the API, nothing should fire meanwhile.
    const startAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const draft = (name: string) => ({
      name,
      schedule: { every: '1h' },
      startAt,
      target: { url: 'http://127.0.0.1:9/hook', body: { hello: 'bench' } },
    });
    const seeded = await createJobs(
      tw.api,
      [service.token],
      Array.from({ length: 200 }, (_, i) => draft(`seed-${i}`)),
    );
    const runsJob = seeded.ids[0]!;
    const now = Date.now();
    await tw.db.db
      .insertInto('runs')
      .values(
        Array.from({ length: 100 }, (_, i) => ({
          id: uuidv7(now + i),
          job_id: runsJob,
          service_id: service.id,
          job_version: 1,
          scheduled_for: new Date(now - (100 - i) * 3_600_000),
          trigger: 'schedule' as const,
          status: 'succeeded' as const,
          attempts: 1,
          http_status: 200,
          response_excerpt: 'ok',
        })),
      )
      .execute();

    let unique = 0;
    let nextId = 0;
    const endpoints: Record<string, (rate?: number) => autocannon.Options> = {
      'POST /v1/jobs': () => ({
        url: tw.api.url,
        requests: [
          {
            method: 'POST',
            path: '/v1/jobs',
            headers: auth,
            setupRequest: (request) => ({ ...request, body: JSON.stringify(draft(`c-${process.pid}-${unique++}`)) }),
          },
        ],
      }),
      'GET /v1/jobs/{id}': () => ({
        url: tw.api.url,
        requests: [
          {
            method: 'GET',
            headers: auth,
            setupRequest: (request) => ({ ...request, path: `/v1/jobs/${seeded.ids[nextId++ % seeded.ids.length]}` }),
          },
        ],
      }),
      'GET /v1/jobs?limit=100': () => ({ url: `${tw.api.url}/v1/jobs?limit=100`, headers: auth }),
      'GET /v1/jobs/{id}/runs': () => ({ url: `${tw.api.url}/v1/jobs/${runsJob}/runs`, headers: auth }),
    };
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
      const peak = median(shots[name]!.map((s) => s.reqPerSec));
      const half = Math.max(1, Math.round(peak / 2));
      const at = await shoot({ ...endpoints[name]!(), ...base, overallRate: half });
      console.log(`  api half-rate ${name.padEnd(24)} ${half} req/s offered: p50 ${at.p50} ms p99 ${at.p99} ms`);
      figures.push({
        name,
        reqPerSec: Math.round(peak),
        p50Ms: median(shots[name]!.map((s) => s.p50)),
        p99Ms: median(shots[name]!.map((s) => s.p99)),
        ratioToHello: round(median(ratios[name]!), 3),
        halfRate: half,
        halfRateP50Ms: at.p50,
        halfRateP99Ms: at.p99,
        errors: shots[name]!.reduce((sum, s) => sum + s.errors, 0) + at.errors,
      });
    }
    return {
      helloReqPerSec: Math.round(median(shots.hello!.map((s) => s.reqPerSec))),
      helloP99Ms: median(shots.hello!.map((s) => s.p99)),
      endpoints: figures,
      loads,
    };
  } finally {
    hello.child.kill('SIGTERM');
    await tw.close();
  }
}
