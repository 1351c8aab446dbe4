/**
 * The queue's own limit at rate: raw BullMQ job schedulers, no Postgres, none of Tickwork's code,
 * delivering to the same HTTP sink as `fireAtRate`.
 *
 *   node bench/src/raw-at-rate.ts [--schedules 100000] [--rate 1000] [--hz 10,100] [--measure-s 30]
 *                                 [--settle-s 2] [--noop | --ledger] [--waker [--waker-from PATH]]
 *                                 [--worker-opts JSON]
 *
 * N schedulers `{ every: N/rate·1000, startDate }` (BullMQ's `upsertJobScheduler`, as Tickwork
 * registers an interval job), their start instants spread over one period so `rate` fall due each
 * second, on a Redis of the bench's own at each `hz`. One worker process: a BullMQ Worker at
 * concurrency 10 with Tickwork's lock, stalled-check and retention settings, making the same HTTP
 * call with undici (keep-alive, 64 sockets) and the `tickwork-scheduled-for` header, or nothing
 * (`--noop`: the sink is told by a Redis counter instead); `--ledger` adds the least a ledger costs
 * (a run row inserted before the call and its outcome after, two autocommit statements, in a
 * database of its own on the shared Postgres). The window starts `--settle-s` after the creation
 * (fireAtRate's 2 s; longer lets the backlog of the creation drain). Figures as `fireAtRate`'s: deliveries/s
 * in a window, lateness at the sink (receive − scheduled instant), lost, duplicates, the worker's
 * peak RSS, and the CPU of each process during the window (% of one core).
 */
import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import pg from 'pg';
import { createTestDatabase, startSink, type Received, type Sink } from '@tickwork/testkit';
import { cpuWindow, loadNow, pidsNamed, rssOf } from './machine.ts';
import { redisPid, startRedis } from './redis-server.ts';
import { percentile, sleep } from './stats.ts';

const connectionOf = (url: string): ConnectionOptions => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null } as ConnectionOptions;
};
const PREFIX = '{rawrate}';
const QUEUE = 'fire';

if (process.argv[2] === '--child') {
  // The worker process: what Tickwork's worker would be with none of Tickwork's code.
  const noop = process.env.NOOP === '1';
  const connection = connectionOf(process.env.REDIS_URL!);
  const dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: 64 });
  const sinkUrl = process.env.SINK_URL!;
  const opts = JSON.parse(process.env.WORKER_OPTS ?? '{}') as Record<string, unknown>;
  const slots = Number(opts.concurrency ?? 10);
  const pool = process.env.LEDGER_URL
    ? new pg.Pool({ connectionString: process.env.LEDGER_URL, max: slots + 2 })
    : undefined;
  await pool?.query(`CREATE TABLE IF NOT EXISTS raw_runs (
    scheduler text NOT NULL, scheduled_for timestamptz NOT NULL, status text NOT NULL,
    started_at timestamptz, finished_at timestamptz, http_status int, PRIMARY KEY (scheduler, scheduled_for))`);
  let inFlight = 0;
  // As the Tickwork worker tells its waker: since when the Worker is taking or finishing a job.
  let fetchingSince: number | undefined;
  const worker = new Worker(
    QUEUE,
    async (job: Job) => {
      inFlight++;
      try {
        await processOne(job);
      } finally {
        inFlight--;
        fetchingSince = Date.now();
      }
    },
    {
      connection,
      prefix: PREFIX,
      concurrency: 10,
      lockDuration: 30_000,
      stalledInterval: 15_000,
      maxStalledCount: 10,
      removeOnComplete: { age: 3_600, count: 1_000 },
      removeOnFail: { age: 7 * 86_400, count: 10_000 },
      ...opts,
    },
  );
  async function processOne(job: Job) {
    const scheduledFor = Number(job.id!.slice(job.id!.lastIndexOf(':') + 1));
    if (noop) return;
    const key = [job.repeatJobKey ?? job.name, new Date(scheduledFor)];
    await pool?.query({
      name: 'raw-start',
      text: `INSERT INTO raw_runs (scheduler, scheduled_for, status, started_at) VALUES ($1, $2, 'running', now())
             ON CONFLICT DO NOTHING`,
      values: key,
    });
    const response = await request(`${sinkUrl}/raw/rate`, {
      method: 'POST',
      dispatcher,
      headers: {
        'content-type': 'application/json',
        'webhook-id': job.id!,
        'tickwork-job-id': job.repeatJobKey ?? job.name,
        'tickwork-scheduled-for': new Date(scheduledFor).toISOString(),
      },
      body: JSON.stringify(job.data),
    });
    await response.body.text();
    await pool?.query({
      name: 'raw-finish',
      text: `UPDATE raw_runs SET status = 'succeeded', finished_at = now(), http_status = $3
             WHERE scheduler = $1 AND scheduled_for = $2`,
      values: [...key, response.statusCode],
    });
    if (response.statusCode >= 300) throw new Error(`HTTP ${response.statusCode}`);
  }
  if (process.env.WAKER === '1') {
    // Tickwork's waker (apps/worker/src/waker.ts, or `--waker-from` another checkout's) beside the
    // raw Worker, told what the Tickwork worker tells it (worker.ts): free slots, taking or finishing.
    const from = process.env.WAKER_FROM || fileURLToPath(new URL('../../apps/worker/src/waker.ts', import.meta.url));
    const { startWaker } = await import(pathToFileURL(from).href);
    const redis = new Redis(process.env.REDIS_URL!);
    const queue = new Queue(QUEUE, { connection, prefix: PREFIX });
    const fetching = () => {
      fetchingSince = Date.now();
    };
    const waiting = () => {
      fetchingSince = undefined;
    };
    worker.on('active', fetching);
    worker.on('drained', waiting);
    worker.on('completed', waiting);
    worker.on('failed', waiting);
    startWaker({
      queue: { queue, redis },
      redis,
      hasFreeSlot: () => inFlight < slots,
      isWaiting: () => fetchingSince === undefined || Date.now() - fetchingSince > 20,
    });
  }
  if (noop) {
    // No sink call: each completion is stamped in the bench's Redis (a list of "scheduledFor:doneAt").
    const stamps = new Redis(process.env.REDIS_URL!);
    worker.on('completed', (job) => {
      const scheduledFor = Number(job.id!.slice(job.id!.lastIndexOf(':') + 1));
      void stamps.rpush(`${PREFIX}:done`, `${job.repeatJobKey}|${scheduledFor}|${Date.now()}`);
    });
  }
  worker.on('error', (error) => console.error('raw worker:', error.message));
  await worker.waitUntilReady();
  process.send!({ type: 'ready' });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'close') void worker.close().finally(() => process.exit(0));
  });
} else {
  const { values } = parseArgs({
    options: {
      schedules: { type: 'string', default: '100000' },
      rate: { type: 'string', default: '1000' },
      hz: { type: 'string', default: '10,100' },
      'measure-s': { type: 'string', default: '30' },
      'settle-s': { type: 'string', default: '2' },
      noop: { type: 'boolean', default: false },
      ledger: { type: 'boolean', default: false },
      // Tickwork's waker beside the raw Worker (what the waker gives BullMQ alone at `hz 10`).
      waker: { type: 'boolean', default: false },
      // With --waker: the waker module to start (another checkout's apps/worker/src/waker.ts, for an A/B).
      'waker-from': { type: 'string', default: '' },
      // BullMQ Worker options over the defaults above, as JSON (a lever: '{"drainDelay":1}').
      'worker-opts': { type: 'string', default: '{}' },
    },
  });
  const schedules = Number(values.schedules);
  const rate = Number(values.rate);
  const measureS = Number(values['measure-s']);
  const everyMs = Math.round((schedules / rate) * 1000);
  const sink = await startSink();
  console.log(
    `raw BullMQ at rate: ${schedules} schedulers, ${rate} due/s (every ${everyMs} ms), 1 worker at concurrency 10, ` +
      `${values.noop ? 'no-op' : values.ledger ? 'the same HTTP call + a ledger row and its outcome' : 'the same HTTP call'}, worker options ${values['worker-opts']}${values.waker ? ', with the waker' : ''}; load ${loadNow()}`,
  );
  for (const hz of values.hz.split(',').map(Number)) {
    const redis = await startRedis(hz);
    try {
      console.log(`RESULT ${JSON.stringify(await atRate(redis.url, hz, sink))}`);
    } finally {
      await redis.stop();
    }
  }
  await sink.close();
  process.exit(0);

  async function atRate(redisUrl: string, hz: number, sink: Sink) {
    const connection = connectionOf(redisUrl);
    const queue = new Queue(QUEUE, { connection, prefix: PREFIX });
    const ledgerDb = values.ledger ? await createTestDatabase('raw_rate') : undefined;
    // The worker runs from the start, as Tickwork's does during its creation phase.
    const child = fork(fileURLToPath(import.meta.url), ['--child'], {
      env: {
        ...process.env,
        REDIS_URL: redisUrl,
        SINK_URL: sink.url,
        NOOP: values.noop ? '1' : '0',
        WORKER_OPTS: values['worker-opts'],
        WAKER: values.waker ? '1' : '0',
        WAKER_FROM: values['waker-from'],
        ...(ledgerDb ? { LEDGER_URL: ledgerDb.url } : {}),
      },
    });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`raw worker exited with ${code}`)));
    });
    // As fireAtRate: phases spread evenly over one period from t0, so `rate` fall due each second;
    // a scheduler created after its phase passed starts at its next instant (as Tickwork hands
    // BullMQ the job's next occurrence as `startDate`).
    const t0 = Date.now() + 1_000;
    const phases = Array.from({ length: schedules }, (_, i) => t0 + Math.floor((i * everyMs) / schedules));
    const createStarted = performance.now();
    let next = 0;
    const lane = async () => {
      for (let i = next++; i < schedules; i = next++) {
        const now = Date.now();
        const phase = phases[i]!;
        const startDate = phase + Math.max(0, Math.ceil((now + 5 - phase) / everyMs)) * everyMs;
        await queue.upsertJobScheduler(
          `s${i}`,
          { every: everyMs, startDate },
          { name: `s${i}`, data: { i }, opts: { attempts: 50 } },
        );
      }
    };
    await Promise.all(Array.from({ length: 32 }, lane));
    const createMs = performance.now() - createStarted;
    console.log(
      `  hz${hz}: created ${schedules} schedulers in ${(createMs / 1000).toFixed(1)} s (${Math.round(schedules / (createMs / 1000))}/s)`,
    );
    await sleep(Number(values['settle-s']) * 1000);
    const windowStart = Date.now();
    const windowEnd = windowStart + measureS * 1000;
    sink.received.length = 0;
    const client = new Redis(redisUrl);
    await client.del(`${PREFIX}:done`);
    const rPid = await redisPid(redisUrl);
    const cpu = cpuWindow({
      worker: () => [child.pid!],
      redis: () => [rPid],
      postgres: () => pidsNamed('postgres'),
    });
    let workerRss = 0;
    while (Date.now() < windowEnd) {
      workerRss = Math.max(workerRss, rssOf(child.pid!).rssMiB);
      await sleep(Math.min(1_000, Math.max(0, windowEnd - Date.now())));
    }
    const cpuShare = cpu();
    const load = loadNow();
    // Deliveries as (scheduler, scheduledFor, receivedAt): the sink's, or the no-op worker's stamps.
    const deliveries = async (): Promise<Array<{ key: string; scheduledFor: number; at: number }>> =>
      values.noop
        ? ((await client.lrange(`${PREFIX}:done`, 0, -1)) as string[]).map((line) => {
            const [id, s, at] = line.split('|');
            return { key: `${id}@${s}`, scheduledFor: Number(s), at: Number(at) };
          })
        : sink.received.map((r: Received) => {
            const scheduledFor = Date.parse(String(r.headers['tickwork-scheduled-for']));
            return { key: `${r.headers['tickwork-job-id']}@${scheduledFor}`, scheduledFor, at: r.at };
          });
    const expectedCount = measureS * rate;
    for (let last = -1, quietSince = Date.now(), deadline = Date.now() + 60_000; Date.now() < deadline; ) {
      await sleep(500);
      const n = (await deliveries()).filter((d) => d.scheduledFor >= windowStart && d.scheduledFor < windowEnd).length;
      if (n >= expectedCount) break;
      if (n !== last) [last, quietSince] = [n, Date.now()];
      else if (Date.now() - quietSince > 3_000) break;
    }
    workerRss = Math.max(workerRss, rssOf(child.pid!).peakMiB);
    const all = await deliveries();
    const inWindow = all.filter((d) => d.scheduledFor >= windowStart && d.scheduledFor < windowEnd);
    const seen = new Set<string>();
    let duplicates = 0;
    for (const d of inWindow) {
      if (seen.has(d.key)) duplicates++;
      seen.add(d.key);
    }
    let expected = 0;
    let lost = 0;
    for (let i = 0; i < schedules; i++) {
      const first = phases[i]!;
      let t = first + Math.max(0, Math.ceil((windowStart - first) / everyMs)) * everyMs;
      for (; t < windowEnd; t += everyMs) {
        expected++;
        if (!seen.has(`s${i}@${t}`)) lost++;
      }
    }
    const deliveredInWindow = all.filter((d) => d.at >= windowStart && d.at < windowEnd);
    const lags = deliveredInWindow.map((d) => d.at - d.scheduledFor);
    child.send({ type: 'close' });
    await new Promise((resolve) => child.once('exit', resolve));
    await queue.close();
    client.disconnect();
    let runs: number | undefined;
    if (ledgerDb) {
      const counter = new pg.Client({ connectionString: ledgerDb.url });
      await counter.connect();
      const { rows } = await counter.query<{ n: string }>(
        'SELECT count(*) AS n FROM raw_runs WHERE scheduled_for >= $1 AND scheduled_for < $2',
        [new Date(windowStart), new Date(windowEnd)],
      );
      runs = Number(rows[0]!.n);
      await counter.end();
    }
    await ledgerDb?.drop().catch(() => {});
    sink.received.length = 0;
    return {
      kind: values.noop ? 'bullmq-noop' : values.ledger ? 'bullmq-fetch-pg' : 'bullmq-fetch',
      settleS: Number(values['settle-s']),
      waker: values.waker ? values['waker-from'] || 'shipped' : false,
      ...(runs === undefined ? {} : { runsRecorded: runs }),
      redisHz: hz,
      schedules,
      rate,
      measureS,
      workerOptions: JSON.parse(values['worker-opts']),
      createPerSec: Math.round(schedules / (createMs / 1000)),
      deliveriesPerSec: Math.round(deliveredInWindow.length / measureS),
      expected,
      delivered: inWindow.length,
      lost,
      duplicates,
      lagP50Ms: percentile(lags, 50),
      lagP95Ms: percentile(lags, 95),
      lagP99Ms: percentile(lags, 99),
      lagMaxMs: percentile(lags, 100),
      workerRssMaxMiB: workerRss,
      cpuPercentOfOneCore: cpuShare,
      load,
    };
  }
}
