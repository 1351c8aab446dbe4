/**
 * A Tickwork deployment for a bench run: a database of its own, a BullMQ prefix of its own, real
 * api and worker processes (started by the e2e helpers), and services made through the admin API.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { uuidv7 } from '@tickwork/core';
import {
  createTestDatabase,
  type TestDatabase,
  ADMIN_TOKEN,
  call,
  startApi,
  startWorker,
  type FleetEnv,
  type Proc,
  deletePrefix,
  freePort,
} from '@tickwork/testkit';

export interface Deployment {
  db: TestDatabase;
  env: FleetEnv;
  api: Proc;
  workers: Proc[];
  addWorker(extraEnv?: Record<string, string>): Promise<Proc>;
  removeWorker(): Promise<void>;
  /** A new service and its API key; `maxJobs` raises the quota directly in the bench's own database. */
  service(name: string, maxJobs?: number): Promise<{ id: string; token: string }>;
  close(): Promise<void>;
}

export async function deploy(options: {
  redisUrl: string;
  workers: number;
  label?: string;
  nodeOptions?: string;
  /** More environment for every process (a Redis Cluster's REDIS_CLUSTER_NODES, FIRE_QUEUE_SHARDS…). */
  env?: Record<string, string>;
}): Promise<Deployment> {
  const db = await createTestDatabase(options.label ?? 'tw_bench');
  const env: FleetEnv = {
    DATABASE_URL: db.url,
    REDIS_URL: options.redisUrl,
    BULLMQ_PREFIX: `{twbench_${Date.now().toString(36)}}`,
    // The bench measures the service, not the limiter: raise it out of the way (issue 4 reads it).
    RATE_LIMIT_PER_MINUTE: '10000000',
    CALLBACK_ALLOW_PRIVATE: 'true',
    // Request and per-callback lines at `info` would be piped into this process and kept; `warn`
    // keeps the bench's own memory flat. RESULTS.md states it.
    LOG_LEVEL: 'warn',
    // `--profile`: every api and worker process writes a V8 CPU profile when it exits.
    ...(options.nodeOptions ? { NODE_OPTIONS: options.nodeOptions } : {}),
    ...options.env,
  };
  // The built code, as the image and `npm start` run it (dist/, built first when stale).
  const api = await startApi(env, { from: 'dist' });
  const workers: Proc[] = [];
  const deployment: Deployment = {
    db,
    env,
    api,
    workers,
    async addWorker(extraEnv = {}) {
      const worker = await startWorker({ ...env, ...extraEnv }, { from: 'dist' });
      workers.push(worker);
      return worker;
    },
    async removeWorker() {
      await workers.pop()?.stop();
    },
    async service(name, maxJobs) {
      const created = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name } });
      if (created.status !== 201) throw new Error(`could not create service ${name}: ${JSON.stringify(created.body)}`);
      if (maxJobs !== undefined) {
        await db.db.updateTable('services').set({ max_jobs: maxJobs }).where('id', '=', created.body.id).execute();
      }
      return { id: created.body.id as string, token: created.body.apiKey as string };
    },
    async close() {
      await Promise.allSettled([api.stop(), ...workers.map((w) => w.stop())]);
      await db.drop().catch(() => {});
      await deletePrefix(options.redisUrl, env.BULLMQ_PREFIX).catch(() => {});
    },
  };
  for (let i = 0; i < options.workers; i++) await deployment.addWorker();
  return deployment;
}

export interface JobDraft {
  name: string;
  schedule: Record<string, unknown>;
  startAt?: string;
  target: { url: string; body?: unknown };
}

/**
 * What the api benches read, made through the api: a service's 200 jobs (`draft` makes more like
 * them: hourly, starting in 30 days, so nothing fires meanwhile) and 100 runs of the first one.
 */
export async function seedApiReads(
  tw: Deployment,
  service: { id: string; token: string },
): Promise<{ draft: (name: string) => JobDraft; ids: string[]; runsJob: string }> {
  const startAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
  const draft = (name: string): JobDraft => ({
    name,
    schedule: { every: '1h' },
    startAt,
    target: { url: 'http://127.0.0.1:9/hook', body: { hello: 'bench' } },
  });
  const { ids } = await createJobs(
    tw.api,
    [service.token],
    Array.from({ length: 200 }, (_, i) => draft(`seed-${i}`)),
  );
  const runsJob = ids[0]!;
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
  return { draft, ids, runsJob };
}

/** The api's own answers the bare server serves from memory, by name. */
export interface BareBodies {
  get: string;
  list: string;
  runs: string;
}

/**
 * The bare routes of `api-bare-server.ts` in a process of their own beside the deployment: the
 * api's own answers to `paths` (read here once, with the service's key) served from memory, and
 * the I/O any design needs (a prepared SELECT, an INSERT, a BullMQ registration) on the
 * deployment's database and Redis. `close()` stops it.
 */
export async function startBareServer(
  tw: Deployment,
  service: { id: string; token: string },
  redisUrl: string,
  paths: BareBodies,
): Promise<{ origin: string; bodies: BareBodies; close(): Promise<void> }> {
  const text = async (path: string) => {
    const response = await fetch(`${tw.api.url}${path}`, { headers: { authorization: `Bearer ${service.token}` } });
    if (response.status !== 200) throw new Error(`${path}: ${response.status}`);
    return response.text();
  };
  const bodies = { get: await text(paths.get), list: await text(paths.list), runs: await text(paths.runs) };
  const file = join(mkdtempSync(join(tmpdir(), 'tw-bare-')), 'bodies.json');
  writeFileSync(file, JSON.stringify({ token: service.token, serviceId: service.id, bodies }));
  const port = await freePort();
  const child = fork(fileURLToPath(new URL('./api-bare-server.ts', import.meta.url)), [], {
    env: {
      ...process.env,
      PORT: String(port),
      BARE_DB_URL: tw.db.url,
      BARE_REDIS_URL: redisUrl,
      BARE_PREFIX: `${tw.env.BULLMQ_PREFIX}bare`,
      BARE_BODIES: file,
    },
  });
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  };
  const [message] = (await once(child, 'message')) as [{ type: string }];
  if (message.type !== 'ready') {
    await close();
    throw new Error('bare server did not start');
  }
  return { origin: `http://127.0.0.1:${port}`, bodies, close };
}

/**
 * Creates jobs through `POST /v1/jobs` with `inFlight` requests at once (as a calling service
 * doing a bulk import would). Returns the created ids in draft order and the wall time.
 */
export async function createJobs(
  api: Proc,
  tokens: string[],
  drafts: JobDraft[],
  inFlight = 32,
): Promise<{ ids: string[]; ms: number }> {
  const pool = new Pool(api.url, { connections: inFlight, pipelining: 1 });
  const ids = new Array<string>(drafts.length);
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    for (let i = next++; i < drafts.length; i = next++) {
      const token = tokens[i % tokens.length]!;
      for (let attempt = 0; ; attempt++) {
        const response = await pool.request({
          method: 'POST',
          path: '/v1/jobs',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(drafts[i]),
        });
        const text = await response.body.text();
        if (response.statusCode === 201) {
          ids[i] = JSON.parse(text).id;
          break;
        }
        // The shared Postgres and Redis answer 503 for a moment when the box is busy: back off, then again.
        if (response.statusCode === 503 && attempt < 20) {
          await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
          continue;
        }
        throw new Error(`POST /v1/jobs answered ${response.statusCode}: ${text}`);
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const ms = performance.now() - started;
  await pool.close();
  return { ids, ms };
}
