/**
 * A peer scheduler in a process of its own (as Tickwork's worker is), driven over IPC by the bench:
 *   bullmq-noop   raw BullMQ Worker, same concurrency, no-op jobs: the queue's ceiling;
 *   bullmq-fetch  raw BullMQ Worker making the same HTTP call Tickwork makes, nothing of ours;
 *   bullmq-fetch-pg  the same, plus the least a ledger needs: a run row inserted before the call
 *                 and its outcome written after (two autocommit statements on a pool of concurrency + 2);
 *   pgboss        pg-boss (Postgres only) making the same call;
 *   graphile      graphile-worker (Postgres only) making the same call, one job per occurrence;
 *   timers        the seed's design: in-memory setTimeout in one process, 10 calls at a time.
 * Messages in: { type: 'load', count, dueAt, tag }. Out: { type: 'ready' }, { type: 'loaded' },
 * { type: 'drained', firstAt, lastAt, lagMs[] } once `count` jobs of that load have finished.
 */
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { Agent, request } from 'undici';

const kind = process.argv[2] as 'bullmq-noop' | 'bullmq-fetch' | 'bullmq-fetch-pg' | 'pgboss' | 'graphile' | 'timers';
const concurrency = Number(process.env.CONCURRENCY ?? 10);
const sinkUrl = process.env.SINK_URL ?? '';
const redisUrl = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const connection = {
  host: redisUrl.hostname,
  port: Number(redisUrl.port || 6379),
  maxRetriesPerRequest: null,
} as ConnectionOptions;
const prefix = process.env.BULLMQ_PREFIX ?? '{twbench_peer}';
// The same dispatcher settings as Tickwork's deliver.ts: keep-alive, up to 64 sockets.
const dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: 64 });

interface Payload {
  id: string;
  dueAt: number;
  tag: string;
}

let expected = 0;
let done = 0;
let firstAt = 0;
let lastAt = 0;
let lags: number[] = [];

function finished(startedAt: number, payload: Payload) {
  lags.push(startedAt - payload.dueAt);
  const now = Date.now();
  if (done === 0) firstAt = now;
  lastAt = now;
  done++;
  if (done === expected) process.send!({ type: 'drained', firstAt, lastAt, lagMs: lags });
}

async function call(payload: Payload): Promise<void> {
  const response = await request(`${sinkUrl}/peer/${payload.tag}`, {
    method: 'POST',
    dispatcher,
    headers: {
      'content-type': 'application/json',
      'webhook-id': payload.id,
      'tickwork-scheduled-for': new Date(payload.dueAt).toISOString(),
    },
    body: JSON.stringify({ hello: 'bench' }),
  });
  await response.body.text();
  if (response.statusCode >= 300) throw new Error(`HTTP ${response.statusCode}`);
}

async function handle(payload: Payload, withHttp: boolean): Promise<void> {
  const startedAt = Date.now();
  if (withHttp) await call(payload);
  finished(startedAt, payload);
}

/**
 * The least a scheduler's ledger costs per occurrence: one row per (job, instant), unique, inserted
 * before the call, its outcome written after; no transaction, no job row read, no signing.
 */
async function startLedger() {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL!, max: concurrency + 2 });
  await pool.query(`CREATE TABLE IF NOT EXISTS peer_runs (
    id text PRIMARY KEY, scheduled_for timestamptz NOT NULL, status text NOT NULL,
    started_at timestamptz, finished_at timestamptz, http_status int)`);
  return {
    start: (p: Payload) =>
      pool.query({
        name: 'peer-start',
        text: `INSERT INTO peer_runs (id, scheduled_for, status, started_at) VALUES ($1, $2, 'running', now())
               ON CONFLICT (id) DO NOTHING`,
        values: [p.id, new Date(p.dueAt)],
      }),
    finish: (p: Payload) =>
      pool.query({
        name: 'peer-finish',
        text: `UPDATE peer_runs SET status = 'succeeded', finished_at = now(), http_status = 200 WHERE id = $1`,
        values: [p.id],
      }),
    end: () => pool.end(),
  };
}

let load: (count: number, dueAt: number, tag: string) => Promise<void>;
let close: () => Promise<void>;

if (kind === 'bullmq-noop' || kind === 'bullmq-fetch' || kind === 'bullmq-fetch-pg') {
  const queue = new Queue('peer', { connection, prefix });
  const ledger = kind === 'bullmq-fetch-pg' ? await startLedger() : undefined;
  const process_ = ledger
    ? async (payload: Payload) => {
        const startedAt = Date.now();
        await ledger.start(payload);
        await call(payload);
        await ledger.finish(payload);
        finished(startedAt, payload);
      }
    : (payload: Payload) => handle(payload, kind !== 'bullmq-noop');
  const worker = new Worker<Payload>('peer', (job) => process_(job.data), {
    connection,
    prefix,
    concurrency,
    removeOnComplete: { count: 1000 },
  });
  await worker.waitUntilReady();
  load = async (count, dueAt, tag) => {
    const delay = Math.max(0, dueAt - Date.now());
    for (let i = 0; i < count; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, count - i) }, (_, j) => {
        const data = { id: `${tag}-${i + j}`, dueAt, tag };
        return { name: 'peer', data, opts: { delay, removeOnComplete: { count: 1000 } } };
      });
      await queue.addBulk(batch);
    }
  };
  close = async () => {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    await ledger?.end();
  };
} else if (kind === 'pgboss') {
  const boss = new PgBoss({
    connectionString: process.env.DATABASE_URL!,
    max: concurrency + 4,
    schema: 'pgboss_bench',
  });
  boss.on('error', (error) => console.error('pg-boss:', error));
  await boss.start();
  await boss.createQueue('peer');
  // Its best settings found for this: one fetcher taking `concurrency` jobs at a time and fetching
  // again at once while batches come back full (one fetcher per slot with batchSize 1 waits out the
  // 0.5 s polling interval after every job: ~20 jobs/s).
  await boss.work<Payload>(
    'peer',
    { localConcurrency: 1, batchSize: concurrency, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 },
    async (jobs) => {
      await Promise.all(jobs.map((job) => handle(job.data, true)));
    },
  );
  load = async (count, dueAt, tag) => {
    for (let i = 0; i < count; i += 1000) {
      const jobs = Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({
        data: { id: `${tag}-${i + j}`, dueAt, tag },
        startAfter: new Date(dueAt),
      }));
      await boss.insert('peer', jobs);
    }
  };
  close = () => boss.stop({ graceful: false, timeout: 5_000 });
} else if (kind === 'graphile') {
  const { run, makeWorkerUtils, Logger } = await import('graphile-worker');
  const connectionString = process.env.DATABASE_URL!;
  const schema = 'graphile_bench';
  const logger = new Logger(() => (level: string, message: string) => {
    if (level === 'error') console.error('graphile-worker:', message);
  });
  // Its best settings for a drain, from its performance guide: a local queue that fetches (and
  // locks) a batch at a time, completions batched, and a 100 ms poll for jobs that fall due
  // (instead of 2 s; a job added for later wakes no LISTEN).
  const runner = await run({
    connectionString,
    schema,
    concurrency,
    maxPoolSize: concurrency + 2,
    pollInterval: 100,
    noHandleSignals: true,
    logger,
    preset: { worker: { localQueue: { size: concurrency * 5 }, completeJobBatchDelay: 0 } },
    taskList: { peer: (payload) => handle(payload as Payload, true) },
  });
  const utils = await makeWorkerUtils({ connectionString, schema, logger });
  load = async (count, dueAt, tag) => {
    for (let i = 0; i < count; i += 1000) {
      const jobs = Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({
        identifier: 'peer',
        payload: { id: `${tag}-${i + j}`, dueAt, tag },
        runAt: new Date(dueAt),
      }));
      await utils.addJobs(jobs);
    }
  };
  close = async () => {
    await runner.stop();
    await utils.release();
  };
} else if (kind === 'timers') {
  // The seed's scheduler: a timer per job in this process's memory, 10 callbacks at a time.
  const waiting: Payload[] = [];
  let running = 0;
  const pump = () => {
    while (running < concurrency && waiting.length > 0) {
      const payload = waiting.shift()!;
      running++;
      handle(payload, true)
        .catch((error) => console.error('timers:', error))
        .finally(() => {
          running--;
          pump();
        });
    }
  };
  load = async (count, dueAt, tag) => {
    for (let i = 0; i < count; i++) {
      const payload = { id: `${tag}-${i}`, dueAt, tag };
      setTimeout(
        () => {
          waiting.push(payload);
          pump();
        },
        Math.max(0, dueAt - Date.now()),
      );
    }
  };
  close = async () => {};
} else {
  throw new Error(`unknown peer ${kind}`);
}

process.on('message', (message: { type: string; count?: number; dueAt?: number; tag?: string }) => {
  if (message.type === 'load') {
    expected = message.count!;
    done = 0;
    lags = [];
    load(message.count!, message.dueAt!, message.tag!).then(
      () => process.send!({ type: 'loaded' }),
      (error) => process.send!({ type: 'error', message: String(error) }),
    );
  } else if (message.type === 'close') {
    close().finally(() => process.exit(0));
  }
});
process.send!({ type: 'ready' });
