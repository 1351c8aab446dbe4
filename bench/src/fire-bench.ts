/**
 * Fire bench. Three parts, all against the same Redis, Postgres and sink:
 *   - `fireAtRate`: N schedules created through the real API, phased so `rate` occurrences come due
 *     each second; measures deliveries/s, lateness, lost and duplicated occurrences, Redis memory
 *     per schedule, RSS of the api and workers, and the time to create N schedules. None falls due
 *     before all are created (a pilot measures the creation rate first), so the window sees the
 *     steady state at N schedules, not the backlog of the creation; with a period of ≤ 10 s (quick
 *     mode's 5 s) it opens only after every schedule fired once.
 *   - `drainCompare`: K occurrences due at one instant, drained by Tickwork and by its peers
 *     (raw BullMQ no-op, raw BullMQ + the same HTTP call, pg-boss, in-memory timers), alternating
 *     rounds; throughput = K / (last delivery − due instant).
 *   - `scaleOut`: the same drain with 1, 2 and 3 Tickwork workers.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startSink, type Received, type Sink } from '@tickwork/testkit';
import { cpuSecondsOf, cpuWindow, loadNow, pidsNamed, rssOf, syscallWindow } from './machine.ts';
import { redisPid, redisUsedMemory } from './redis-server.ts';
import { median, percentile, rotated, round, sleep } from './stats.ts';
import { createJobs, deploy, type Deployment, type JobDraft } from './tickwork.ts';

/**
 * A process of the deployment that ended while it was being measured. Its figures would be
 * meaningless (a dead worker delivers nothing, and its RSS can no longer be read), so the bench
 * reports the death itself: exit code, signal and what the process printed last.
 */
export class ProcessDied extends Error {
  readonly role: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly lastOutput: string;
  constructor(role: string, code: number | null, signal: NodeJS.Signals | null, lastOutput: string) {
    super(
      `${role} died during the measurement: exit code ${code}, signal ${signal}\n--- its last output ---\n${lastOutput}`,
    );
    this.name = 'ProcessDied';
    this.role = role;
    this.code = code;
    this.signal = signal;
    this.lastOutput = lastOutput;
  }
}

/** Throws {@link ProcessDied} when any of the processes has exited. */
export function assertAlive(processes: Array<{ role: string; proc: Deployment['api'] }>): void {
  for (const { role, proc } of processes) {
    const { exitCode, signalCode } = proc.child;
    if (exitCode === null && signalCode === null) continue;
    throw new ProcessDied(role, exitCode, signalCode, proc.output.join('').slice(-4_000));
  }
}

const scheduledForOf = (r: Received) => Date.parse(String(r.headers['tickwork-scheduled-for']));

export interface AtRateFigures {
  redisHz: number;
  schedules: number;
  rate: number;
  everyMs: number;
  workers: number;
  createMs: number;
  createPerSec: number;
  /** The creation rate the pilot measured, from which the first due instant was chosen. */
  pilotPerSec: number;
  /** The first occurrence's due instant minus the end of the creation (negative: some fell due during it). */
  firstDueAfterCreationMs: number;
  /** How long after the first due instant the window opened (a short period: after its whole first cycle). */
  windowAfterFirstDueMs: number;
  measureS: number;
  expected: number;
  delivered: number;
  deliveriesPerSec: number;
  lost: number;
  duplicates: number;
  runsRecorded: number;
  lagP50Ms: number;
  lagP95Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  redisBytesPerSchedule: number;
  apiRssMaxMiB: number;
  workerRssMaxMiB: number[];
  /** Right after start, before any schedule: what the process costs before it does anything. */
  apiRssIdleMiB: number;
  workerRssIdleMiB: number[];
  /**
   * Runs written during the window (any occurrence, whenever due), per second, by outcome: what
   * the worker processed, including late occurrences its misfire policy recorded as missed.
   */
  recordedPerSec: number;
  recordedByOutcome: Record<string, number>;
  /** CPU of each process during the window, % of one core (`box`: the whole box's busy share). */
  cpuPercentOfOneCore: Record<string, number>;
  load: string;
}

/** The pilot's size: 1% of the schedules, within these bounds. */
const PILOT_MIN = 50;
const PILOT_MAX = 1_000;
/** The first occurrences fall due this much past the creation's estimated end (the rate drifts as tables grow). */
const CREATE_MARGIN = 1.3;
const CREATE_SLACK_MS = 3_000;
/** A period up to this long has its whole first cycle fire before the window opens. */
const WARM_CYCLE_MAX_MS = 10_000;

export interface WindowDetails {
  /** The first occurrence's due instant. */
  firstDue: number;
  windowStart: number;
  windowEnd: number;
  /** [scheduled instant, received at] of each delivery of an occurrence due in the window. */
  deliveries: Array<[number, number]>;
  workerMetricsAtStart: string;
  workerMetricsAtEnd: string;
  /**
   * Each delivery's path, where it could be read (NaN where not): [scheduled instant, received at,
   * BullMQ's `processedOn` (the Worker sent its `moveToActive`), the run's `started_at` (Postgres
   * began the record-and-start statement), BullMQ's `finishedOn`] (epoch ms).
   */
  parts: Array<[number, number, number, number, number]>;
  /** The box every 50 ms: [at, busy % of the whole box, steal % of the box, the first worker's CPU % of a core]. */
  box: Array<[number, number, number, number]>;
}

/** /proc/stat's first line: [busy, steal, total] ticks. */
function boxTicks(): [number, number, number] {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return [total - f[3]! - f[4]!, f[7] ?? 0, total];
}

/**
 * What a lateness analysis needs besides the deliveries, sampled while the window runs: BullMQ's
 * completed jobs of the fire queue (its `processedOn` and `finishedOn`, read every second: it keeps
 * only the last 1,000) and the box's CPU every 50 ms.
 */
function traceWindow(redisUrl: string, prefix: string, workerPid: number) {
  const redis = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });
  const jobs = new Map<string, [number, number]>();
  const box: Array<[number, number, number, number]> = [];
  let last = boxTicks();
  let lastWorker = cpuSecondsOf(workerPid);
  let lastAt = Date.now();
  const boxTimer = setInterval(() => {
    const now = boxTicks();
    const worker = cpuSecondsOf(workerPid);
    const at = Date.now();
    const total = now[2] - last[2] || 1;
    box.push([
      at,
      Math.round((200 * (now[0] - last[0])) / total),
      Math.round((200 * (now[1] - last[1])) / total),
      Math.round((100 * (worker - lastWorker)) / ((at - lastAt) / 1000)),
    ]);
    [last, lastWorker, lastAt] = [now, worker, at];
  }, 50);
  let since = Date.now() - 1_000;
  let keys: string[] = [];
  const read = async () => {
    if (keys.length === 0) {
      const [, found] = await redis.scan('0', 'MATCH', `${prefix}*:completed`, 'COUNT', 10_000);
      keys = found.filter((k) => !k.includes('maintenance'));
    }
    const from = since;
    since = Date.now() - 200;
    for (const key of keys) {
      const ids = await redis.zrangebyscore(key, from, '+inf');
      const base = key.slice(0, -'completed'.length);
      const pipe = redis.pipeline();
      for (const id of ids) pipe.hmget(`${base}${id}`, 'processedOn', 'finishedOn');
      const answers = (await pipe.exec()) ?? [];
      ids.forEach((id, i) => {
        const [p, f] = (answers[i]?.[1] as Array<string | null> | undefined) ?? [];
        jobs.set(id, [Number(p ?? Number.NaN), Number(f ?? Number.NaN)]);
      });
    }
  };
  let reading = Promise.resolve();
  const readTimer = setInterval(() => {
    reading = reading.then(read).catch(() => {});
  }, 1_000);
  return {
    box,
    /** processedOn and finishedOn of the fire job of (job id, scheduled instant). */
    async stop(): Promise<(jobId: string, at: number) => [number, number]> {
      clearInterval(boxTimer);
      clearInterval(readTimer);
      await reading;
      await read().catch(() => {});
      redis.disconnect();
      const byOccurrence = new Map<string, [number, number]>();
      for (const [id, times] of jobs) {
        const m = /^repeat:job:([^:]+):v\d+:(\d+)$/.exec(id);
        if (m) byOccurrence.set(`${m[1]}@${m[2]}`, times);
      }
      return (jobId, at) => byOccurrence.get(`${jobId}@${at}`) ?? [Number.NaN, Number.NaN];
    },
  };
}

async function metricsOf(proc: Deployment['api']): Promise<string> {
  const response = await fetch(`${proc.url}/metrics`).catch(() => undefined);
  return response ? await response.text() : '';
}

export async function fireAtRate(options: {
  redisUrl: string;
  redisHz: number;
  schedules: number;
  rate: number;
  measureS: number;
  workers: number;
  sink: Sink;
  nodeOptions?: string | undefined;
  /** How long to wait for the window's late occurrences. @defaultValue 60000 */
  lateWaitMs?: number;
  /** More environment for the deployment's processes (a Redis Cluster's). */
  env?: Record<string, string>;
  /** Redis's used memory in bytes (a Cluster: summed over its masters). @defaultValue INFO of `redisUrl` */
  usedMemory?: () => Promise<number>;
  /**
   * Given what a lateness analysis needs: the window, every delivery of an occurrence due in it
   * (scheduled instant, received at), and the first worker's /metrics at the window's start and end
   * (its event-loop delay and GC figures). Without it, /metrics is not read.
   */
  onWindow?: (details: WindowDetails) => void | Promise<void>;
}): Promise<AtRateFigures> {
  const { schedules, rate, sink } = options;
  const everyMs = Math.round((schedules / rate) * 1000);
  if (everyMs < 1000)
    throw new Error(`--schedules / --rate must be at least 1 s (the default minimum interval); got ${everyMs} ms`);
  const usedMemory = options.usedMemory ?? (() => redisUsedMemory(options.redisUrl));
  const tw = await deploy({
    redisUrl: options.redisUrl,
    workers: options.workers,
    label: 'tw_bench_fire',
    nodeOptions: options.nodeOptions,
    ...(options.env ? { env: options.env } : {}),
  });
  const apiRssIdleMiB = rssOf(tw.api.child.pid!).rssMiB;
  const workerRssIdleMiB = tw.workers.map((w) => rssOf(w.child.pid!).rssMiB);
  try {
    // Services keep their default quota (10,000 jobs): N schedules are spread over N/10,000 services.
    const services = await Promise.all(
      Array.from({ length: Math.ceil(schedules / 10_000) }, (_, i) => tw.service(`bench-fire-${i}`)),
    );
    // The steady state at N schedules: none falls due before all are created. A pilot (jobs of a
    // service of their own, first due in a day, never in the window) measures the creation rate
    // first; the first occurrences then start at t0, past the creation's estimated end with a
    // margin, and the window 2 s after both (the figures say by how much the estimate held).
    const pilotCount = Math.min(PILOT_MAX, Math.max(PILOT_MIN, Math.ceil(schedules / 100)));
    const pilotService = await tw.service('bench-fire-pilot');
    const farAway = new Date(Date.now() + 86_400_000).toISOString();
    const pilot = await createJobs(
      tw.api,
      [pilotService.token],
      Array.from({ length: pilotCount }, (_, i) => ({
        name: `pilot-${i}`,
        schedule: { everyMs: 3_600_000 },
        startAt: farAway,
        target: { url: `${sink.url}/tw/pilot` },
      })),
      32,
    );
    const pilotPerSec = pilotCount / (pilot.ms / 1000);
    const estimatedCreateMs = (schedules / pilotPerSec) * 1000;
    const t0 = Date.now() + Math.round(estimatedCreateMs * CREATE_MARGIN) + CREATE_SLACK_MS;
    const memoryBeforeSchedules = await usedMemory();
    const startAts = Array.from({ length: schedules }, (_, i) => t0 + Math.floor((i * everyMs) / schedules));
    const drafts: JobDraft[] = startAts.map((startAt, i) => ({
      name: `fire-${i}`,
      schedule: { everyMs },
      startAt: new Date(startAt).toISOString(),
      target: { url: `${sink.url}/tw/rate`, body: { i } },
    }));
    // Jobs i of service i % S: each service gets an even share of the phases.
    const tokens = services.map((s) => s.token);
    const created = await createJobs(tw.api, tokens, drafts, 32);
    const createdAt = Date.now();
    const memoryAfter = await usedMemory();
    const firstDueAfterCreationMs = t0 - createdAt;
    console.log(
      `  fire hz${options.redisHz}: created ${schedules} schedules in ${(created.ms / 1000).toFixed(1)} s ` +
        `(${Math.round(schedules / (created.ms / 1000))}/s; the pilot's ${Math.round(pilotPerSec)}/s); ` +
        `the first occurrences ${firstDueAfterCreationMs >= 0 ? `${firstDueAfterCreationMs} ms after` : `${-firstDueAfterCreationMs} ms before`} its end`,
    );

    // A short period (quick mode's 5 s): the window opens in the second cycle, once every schedule
    // has fired once, so it measures the steady state rather than each job's first occurrence (the
    // costlier path of a version's first run) on a worker whose code is still cold.
    const warmMs = everyMs <= WARM_CYCLE_MAX_MS ? everyMs : 0;
    await sleep(Math.max(t0 + warmMs, createdAt) + 2_000 - Date.now());
    // Read first (it resets the event-loop delay histogram): the end's figures are the window's.
    const workerMetricsAtStart = options.onWindow ? await metricsOf(tw.workers[0]!) : '';
    const trace = options.onWindow
      ? traceWindow(options.redisUrl, tw.env.BULLMQ_PREFIX, tw.workers[0]!.child.pid!)
      : undefined;
    const windowStart = Date.now();
    const windowEnd = windowStart + options.measureS * 1000;
    sink.received.length = 0;
    let apiRss = 0;
    const workerRss = tw.workers.map(() => 0);
    const load = loadNow();
    const rPid = await redisPid(options.redisUrl).catch(() => Number.NaN);
    const cpu = cpuWindow({
      api: () => [tw.api.child.pid!],
      ...Object.fromEntries(tw.workers.map((w, i) => [`worker ${i + 1}`, () => [w.child.pid!]])),
      redis: () => (Number.isFinite(rPid) ? [rPid] : []),
      postgres: () => pidsNamed('postgres'),
    });
    let cpuShare: Record<string, number> = {};
    const processes = [
      { role: 'api', proc: tw.api },
      ...tw.workers.map((proc, i) => ({ role: `worker ${i + 1}`, proc })),
    ];
    while (Date.now() < windowEnd) {
      assertAlive(processes);
      apiRss = Math.max(apiRss, rssOf(tw.api.child.pid!).rssMiB);
      tw.workers.forEach((w, i) => {
        workerRss[i] = Math.max(workerRss[i]!, rssOf(w.child.pid!).rssMiB);
      });
      await sleep(Math.min(1_000, Math.max(0, windowEnd - Date.now())));
    }
    cpuShare = cpu();
    const workerMetricsAtEnd = options.onWindow ? await metricsOf(tw.workers[0]!) : '';
    // Let the window's late occurrences arrive: until every expected one came, or none came for 3 s
    // (at most `lateWaitMs`). A late occurrence counts in the lateness figures; only one that never came is lost.
    const expectedCount = Math.round((options.measureS * 1000 * schedules) / everyMs);
    const countInWindow = () =>
      sink.received.reduce((n, r) => {
        const at = scheduledForOf(r);
        return at >= windowStart && at < windowEnd ? n + 1 : n;
      }, 0);
    for (
      let last = -1, quietSince = Date.now(), deadline = Date.now() + (options.lateWaitMs ?? 60_000);
      Date.now() < deadline;
    ) {
      await sleep(500);
      assertAlive(processes);
      const n = countInWindow();
      if (n >= expectedCount) break;
      if (n !== last) [last, quietSince] = [n, Date.now()];
      else if (Date.now() - quietSince > 3_000) break;
    }
    assertAlive(processes);
    apiRss = Math.max(apiRss, rssOf(tw.api.child.pid!).peakMiB);
    tw.workers.forEach((w, i) => {
      workerRss[i] = Math.max(workerRss[i]!, rssOf(w.child.pid!).peakMiB);
    });

    const expected = new Set<string>();
    for (let i = 0; i < schedules; i++) {
      const first = startAts[i]!;
      let t = first + Math.max(0, Math.ceil((windowStart - first) / everyMs)) * everyMs;
      for (; t < windowEnd; t += everyMs) expected.add(`${created.ids[i]}@${t}`);
    }
    const inWindow = sink.received.filter((r) => {
      const at = scheduledForOf(r);
      return at >= windowStart && at < windowEnd;
    });
    const seen = new Set<string>();
    let duplicates = 0;
    for (const r of inWindow) {
      const key = `${r.headers['tickwork-job-id']}@${scheduledForOf(r)}`;
      if (seen.has(key)) duplicates++;
      seen.add(key);
    }
    // Throughput and lateness count what reached the sink during the window, whenever it was due:
    // an overloaded worker delivers occurrences of minutes ago, and that is what a receiver sees.
    const deliveredInWindow = sink.received.filter((r) => r.at >= windowStart && r.at < windowEnd);
    const lags = deliveredInWindow.map((r) => r.at - scheduledForOf(r));
    let lost = 0;
    for (const key of expected) if (!seen.has(key)) lost++;
    const runs = await tw.db.db
      .selectFrom('runs')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('scheduled_for', '>=', new Date(windowStart))
      .where('scheduled_for', '<', new Date(windowEnd))
      .executeTakeFirst();
    const written = await tw.db.db
      .selectFrom('runs')
      .select((eb) => ['status', 'skip_reason', eb.fn.countAll<string>().as('n')])
      .where('created_at', '>=', new Date(windowStart))
      .where('created_at', '<', new Date(windowEnd))
      .groupBy(['status', 'skip_reason'])
      .execute();
    const recordedByOutcome = Object.fromEntries(
      written.map((row) => [row.skip_reason ? `${row.status}:${row.skip_reason}` : row.status, Number(row.n)]),
    );
    const recorded = Object.values(recordedByOutcome).reduce((a, b) => a + b, 0);
    if (options.onWindow) {
      const bullmq = await trace!.stop();
      const started = await tw.db.db
        .selectFrom('runs')
        .select(['job_id', 'scheduled_for', 'started_at'])
        .where('scheduled_for', '>=', new Date(windowStart))
        .where('scheduled_for', '<', new Date(windowEnd))
        .execute();
      const startedAt = new Map(
        started.map((row) => [`${row.job_id}@${row.scheduled_for.getTime()}`, row.started_at?.getTime() ?? Number.NaN]),
      );
      await options.onWindow({
        firstDue: t0,
        windowStart,
        windowEnd,
        deliveries: inWindow.map((r) => [scheduledForOf(r), r.at]),
        workerMetricsAtStart,
        workerMetricsAtEnd,
        parts: inWindow.map((r) => {
          const at = scheduledForOf(r);
          const jobId = String(r.headers['tickwork-job-id']);
          const [processedOn, finishedOn] = bullmq(jobId, at);
          return [at, r.at, processedOn, startedAt.get(`${jobId}@${at}`) ?? Number.NaN, finishedOn];
        }),
        box: trace!.box,
      });
    }
    return {
      redisHz: options.redisHz,
      schedules,
      rate,
      everyMs,
      workers: options.workers,
      createMs: Math.round(created.ms),
      createPerSec: Math.round(schedules / (created.ms / 1000)),
      pilotPerSec: Math.round(pilotPerSec),
      firstDueAfterCreationMs,
      windowAfterFirstDueMs: windowStart - t0,
      measureS: options.measureS,
      expected: expected.size,
      delivered: inWindow.length,
      deliveriesPerSec: Math.round(deliveredInWindow.length / options.measureS),
      lost,
      duplicates,
      runsRecorded: Number(runs?.n ?? 0),
      lagP50Ms: percentile(lags, 50),
      lagP95Ms: percentile(lags, 95),
      lagP99Ms: percentile(lags, 99),
      lagMaxMs: percentile(lags, 100),
      redisBytesPerSchedule: Math.round((memoryAfter - memoryBeforeSchedules) / schedules),
      apiRssMaxMiB: apiRss,
      workerRssMaxMiB: workerRss,
      apiRssIdleMiB,
      workerRssIdleMiB,
      recordedPerSec: Math.round(recorded / options.measureS),
      recordedByOutcome,
      cpuPercentOfOneCore: cpuShare,
      load,
    };
  } finally {
    sink.received.length = 0;
    await tw.close();
  }
}

export type Contestant =
  | 'tickwork'
  | 'bullmq-noop'
  | 'bullmq-fetch'
  | 'bullmq-fetch-pg'
  | 'pgboss'
  | 'graphile'
  | 'timers';

interface Peer {
  child: ChildProcess;
  next(type: string): Promise<{ type: string; firstAt?: number; lastAt?: number; lagMs?: number[]; message?: string }>;
}

async function startPeer(kind: string, env: Record<string, string>): Promise<Peer> {
  const child = fork(fileURLToPath(new URL('./peer.ts', import.meta.url)), [kind], { env: { ...process.env, ...env } });
  const inbox: any[] = [];
  const waiting: Array<(m: any) => void> = [];
  child.on('exit', (code) => {
    for (const w of waiting.splice(0)) w({ type: 'error', message: `exited with ${code}` });
  });
  child.on('message', (m) => {
    const w = waiting.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  const peer: Peer = {
    child,
    async next(type) {
      const m = inbox.length
        ? inbox.shift()
        : await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${kind}: no '${type}' within 120 s`)), 120_000);
            waiting.push((message) => {
              clearTimeout(timer);
              resolve(message);
            });
          });
      if (m.type === 'error') throw new Error(`${kind}: ${m.message}`);
      if (m.type !== type) throw new Error(`${kind}: expected ${type}, got ${m.type}`);
      return m;
    },
  };
  await peer.next('ready');
  return peer;
}

export interface DrainShot {
  perSec: number;
  lagP99Ms: number;
  /**
   * CPU of each process from the due instant to the last delivery, in ms per occurrence
   * (`box`: the whole box's busy time; `bench (driver + sink)`: this process).
   */
  cpuMsPerOccurrence?: Record<string, number>;
  /**
   * Read and write syscalls per occurrence of each process whose `/proc/<pid>/io` is readable
   * (the worker, the bench's own Redis, the api: `worker.writes`, …) and their CPU ms in user and kernel mode
   * (`worker.userMs`, `worker.sysMs`), over the same window.
   */
  syscallsPerOccurrence?: Record<string, number>;
  /** `BENCH_ACCOUNT=1`: Postgres and Redis counters per occurrence. */
  account?: { pg: Account; redis: Account };
}

/**
 * `BENCH_ACCOUNT=1`: what a drain shot costs Postgres and Redis per occurrence, from counters
 * snapshotted at the due instant and after the last delivery: the bench database's
 * `pg_stat_database` (transactions — one per autocommit statement —, tuples, time active in
 * statements) and `pg_stat_user_tables` (rows inserted, updated, HOT-updated, index scans per
 * table), and the bench Redis's `INFO commandstats` (calls and time per command). An idle
 * Postgres backend publishes its counters within 10 s, so the end is read after 11 s.
 */
export type Account = Record<string, number>;

const PG_DATABASE_COUNTERS = `select xact_commit + xact_rollback as xacts, tup_returned, tup_fetched, tup_inserted,
  tup_updated, tup_deleted, blks_hit + blks_read as blocks, active_time from pg_stat_database
  where datname = current_database()`;
const PG_TABLE_COUNTERS = `select relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, coalesce(idx_scan, 0) as idx_scan,
  coalesce(seq_scan, 0) as seq_scan, coalesce(seq_tup_read, 0) as seq_tup_read,
  coalesce(idx_tup_fetch, 0) as idx_tup_fetch from pg_stat_user_tables`;

async function countersOf(databaseUrl: string, redisUrl: string): Promise<{ pg: Account; redis: Account }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const pgCounters: Account = {};
  try {
    const db = (await client.query(PG_DATABASE_COUNTERS)).rows[0] as Record<string, string>;
    for (const [k, v] of Object.entries(db)) pgCounters[`db.${k}`] = Number(v);
    for (const row of (await client.query(PG_TABLE_COUNTERS)).rows as Array<Record<string, string>>) {
      for (const [k, v] of Object.entries(row)) if (k !== 'relname') pgCounters[`${row.relname}.${k}`] = Number(v);
    }
  } finally {
    await client.end();
  }
  return { pg: pgCounters, redis: await redisCommandStats(redisUrl) };
}

async function redisCommandStats(redisUrl: string): Promise<Account> {
  const redis = new Redis(redisUrl, { lazyConnect: true });
  await redis.connect();
  try {
    const info = await redis.info('commandstats');
    const out: Account = {};
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      out[`${m[1]}.calls`] = Number(m[2]);
      out[`${m[1]}.usec`] = Number(m[3]);
    }
    return out;
  } finally {
    redis.disconnect();
  }
}

/** The counters' growth per occurrence, the ones that moved, rounded. */
function perOccurrence(before: Account, after: Account, count: number): Account {
  const out: Account = {};
  for (const [k, v] of Object.entries(after)) {
    const d = (v - (before[k] ?? 0)) / count;
    if (Math.abs(d) >= 0.005) out[k] = round(d, 3);
  }
  return out;
}

/** Starts accounting a drain shot; the returned function ends it and gives the per-occurrence figures. */
async function accountFrom(databaseUrl: string, redisUrl: string) {
  const before = await countersOf(databaseUrl, redisUrl);
  return async (count: number) => {
    const redisAfter = await redisCommandStats(redisUrl);
    await sleep(Number(process.env.BENCH_ACCOUNT_WAIT_MS ?? 11_000));
    const after = await countersOf(databaseUrl, redisUrl);
    return { pg: perOccurrence(before.pg, after.pg, count), redis: perOccurrence(before.redis, redisAfter, count) };
  };
}

/** The processes whose CPU a drain shot records, besides this one and the box. */
type CpuRoles = Record<string, () => number[]>;

/** Starts counting CPU at `dueAt` (waits for it: nothing is delivered before it anyway). */
async function cpuFromDue(dueAt: number, roles: CpuRoles | undefined) {
  if (!roles) return undefined;
  await sleep(Math.max(0, dueAt - 300 - Date.now()));
  const account = accounting ? await accountFrom(accounting.databaseUrl, accounting.redisUrl) : undefined;
  await sleep(Math.max(0, dueAt - Date.now()));
  const startedAt = Date.now();
  const stop = cpuWindow(roles);
  const stopSyscalls = syscallWindow(roles);
  const strace = process.env.BENCH_STRACE ? straceOf(roles.worker?.() ?? [], process.env.BENCH_STRACE) : undefined;
  let syscalls: Record<string, number> = {};
  const cpu = (count: number) => {
    const seconds = (Date.now() - startedAt) / 1000;
    syscalls = Object.fromEntries(Object.entries(stopSyscalls()).map(([key, n]) => [key, round(n / count, 2)]));
    return Object.fromEntries(
      Object.entries(stop()).map(([role, percent]) => [role, round(((percent / 100) * seconds * 1000) / count, 2)]),
    );
  };
  return Object.assign(cpu, { account, syscalls: () => syscalls, strace });
}

/**
 * `BENCH_STRACE=<file prefix>`: `strace -c -f` on the worker's processes over a drain shot (from
 * its due instant to its last delivery), its summary written to `<prefix>-<n>.strace`
 * (`BENCH_STRACE_ARGS` replaces `-c`, e.g. `-yy -e trace=write,writev` for each call and its socket). strace
 * slows every syscall of the process it traces: for the counts, not for a rate.
 */
function straceOf(pids: number[], prefix: string): (() => Promise<void>) | undefined {
  if (pids.length === 0) return undefined;
  straces += 1;
  const child = spawn(
    'strace',
    [
      ...(process.env.BENCH_STRACE_ARGS ?? '-c').split(' '),
      '-f',
      '-o',
      `${prefix}-${straces}.strace`,
      ...pids.flatMap((p) => ['-p', `${p}`]),
    ],
    {
      stdio: 'ignore',
    },
  );
  return async () => {
    const exited = once(child, 'exit');
    child.kill('SIGINT');
    await Promise.race([exited, sleep(5_000)]);
  };
}
let straces = 0;

/** Where `BENCH_ACCOUNT=1` reads its counters (set by `drainCompare`). */
let accounting: { databaseUrl: string; redisUrl: string } | undefined;

/** Waits until `count` callbacks whose path starts with `path` reached the sink; their receive times. */
async function sinkArrivals(sink: Sink, path: string, count: number, timeoutMs: number): Promise<Received[]> {
  // Scans each callback once (a filter per callback would cost the sink O(K²) while it measures).
  let matched = 0;
  let scanned = 0;
  await sink.waitFor(
    (received) => {
      for (; scanned < received.length; scanned++) if (received[scanned]!.path.startsWith(path)) matched++;
      return matched >= count;
    },
    timeoutMs,
    `${count} callbacks on ${path}`,
  );
  const mine = sink.received.filter((r) => r.path.startsWith(path));
  const stray = sink.received.filter((r) => !r.path.startsWith(path));
  if (stray.length)
    console.log(
      `  (${stray.length} other callbacks reached the sink meanwhile: ${[...new Set(stray.map((r) => r.path))].join(', ')})`,
    );
  return mine;
}

function shotOf(dueAt: number, arrivals: number[], count: number): DrainShot {
  const last = Math.max(...arrivals);
  return {
    perSec: Math.round(count / (Math.max(1, last - dueAt) / 1000)),
    lagP99Ms: percentile(
      arrivals.map((a) => a - dueAt),
      99,
    ),
  };
}

/** One Tickwork drain: K interval jobs created through the API, all due at one instant. */
export async function tickworkDrain(
  tw: Deployment,
  token: string,
  sink: Sink,
  count: number,
  tag: string,
  createPerSec: { value: number },
  retries = 2,
  cpuRoles?: CpuRoles,
): Promise<DrainShot> {
  // Twice the time the last creates took (the first guess is 150/s): creates share the box with
  // the worker and the other contestants' leftovers, and ran at 141/s in a quick run at load 8.7.
  const margin = 1_000 + Math.ceil((count / createPerSec.value) * 1_000 * 2);
  const dueAt = Date.now() + margin;
  const drafts: JobDraft[] = Array.from({ length: count }, (_, i) => ({
    name: `drain-${tag}-${i}`,
    schedule: { every: '1h' },
    startAt: new Date(dueAt).toISOString(),
    target: { url: `${sink.url}/tw/${tag}`, body: { i } },
  }));
  const created = await createJobs(tw.api, [token], drafts, 32);
  createPerSec.value = count / (created.ms / 1000);
  if (Date.now() >= dueAt) {
    // A busy box created more slowly than the last shot: again, with the margin of the rate just seen.
    if (retries === 0) throw new Error(`creating ${count} jobs took past their due instant; raise the margin`);
    // (Those created late fire an hour on: the sink tells the next shot's callbacks by their path.)
    console.log(
      `  (creating ${count} jobs took past their due instant at ${Math.round(createPerSec.value)}/s; again with a wider margin)`,
    );
    return tickworkDrain(tw, token, sink, count, `${tag}r`, createPerSec, retries - 1, cpuRoles);
  }
  const cpu = await cpuFromDue(dueAt, cpuRoles);
  const arrivals = await sinkArrivals(sink, `/tw/${tag}`, count, 120_000);
  const cpuMs = cpu?.(count);
  await cpu?.strace?.();
  return {
    ...shotOf(
      dueAt,
      arrivals.map((r) => r.at),
      count,
    ),
    ...(cpuMs ? { cpuMsPerOccurrence: cpuMs, syscallsPerOccurrence: cpu!.syscalls() } : {}),
    ...(cpu?.account ? { account: await cpu.account(count) } : {}),
  };
}

async function peerDrain(
  peer: Peer,
  kind: Contestant,
  sink: Sink,
  count: number,
  tag: string,
  cpuRoles?: CpuRoles,
): Promise<DrainShot> {
  const dueAt = Date.now() + 1_000 + Math.ceil(count / 10);
  peer.child.send({ type: 'load', count, dueAt, tag });
  if (process.env.BENCH_DEBUG) console.log('debug: load sent', kind);
  await peer.next('loaded');
  if (Date.now() >= dueAt) throw new Error(`${kind}: loading took past the due instant`);
  if (process.env.BENCH_DEBUG) console.log('debug: loaded', kind);
  const cpu = await cpuFromDue(dueAt, cpuRoles);
  const drained = await peer.next('drained');
  if (process.env.BENCH_DEBUG) console.log('debug: drained', kind, sink.received.length);
  const withCpu = async (shot: DrainShot): Promise<DrainShot> => {
    if (!cpu) return shot;
    const cpuMsPerOccurrence = cpu(count);
    await cpu.strace?.();
    return {
      ...shot,
      cpuMsPerOccurrence,
      syscallsPerOccurrence: cpu.syscalls(),
      ...(cpu.account ? { account: await cpu.account(count) } : {}),
    };
  };
  if (kind === 'bullmq-noop') return withCpu(shotOf(dueAt, [drained.lastAt!], count));
  const arrivals = await sinkArrivals(sink, `/peer/${tag}`, count, 120_000);
  return withCpu(
    shotOf(
      dueAt,
      arrivals.map((r) => r.at),
      count,
    ),
  );
}

export interface DrainFigures {
  count: number;
  rounds: number;
  perContestant: Record<
    string,
    { perSec: number; lagP99Ms: number; shots: number[]; cpuMsPerOccurrence: Record<string, number> }
  >;
  tickworkOverBullmqFetch: number;
  /** Tickwork / raw BullMQ + the call + the least ledger (a run row and its outcome). */
  tickworkOverBullmqFetchPg: number;
  /** What the least ledger costs raw BullMQ + the call. */
  bullmqFetchPgOverBullmqFetch: number;
  tickworkOverPgboss: number;
  tickworkOverGraphile: number;
  tickworkOverTimers: number;
  bullmqFetchOverNoop: number;
  loads: string[];
}

export async function drainCompare(options: {
  redisUrl: string;
  sink: Sink;
  count: number;
  rounds: number;
  contestants: Contestant[];
  tw: Deployment;
  token: string;
}): Promise<DrainFigures> {
  const { sink, count } = options;
  accounting = process.env.BENCH_ACCOUNT ? { databaseUrl: options.tw.db.url, redisUrl: options.redisUrl } : undefined;
  const peers = new Map<Contestant, Peer>();
  const env = {
    REDIS_URL: options.redisUrl,
    DATABASE_URL: options.tw.db.url,
    SINK_URL: sink.url,
    BULLMQ_PREFIX: `{twbench_peer_${Date.now().toString(36)}}`,
    CONCURRENCY: '10',
  };
  // A peer process is started for its shot and closed after it: a raw BullMQ worker left idle in
  // the background while another contestant ran sometimes never picked up its next delayed batch
  // (seen twice, not yet understood; bench/RESULTS.md lists it), which would stall the whole run.
  const closePeer = async (kind: Contestant) => {
    const peer = peers.get(kind);
    if (!peer) return;
    peers.delete(kind);
    const exited = once(peer.child, 'exit');
    peer.child.send({ type: 'close' });
    await Promise.race([exited, sleep(10_000)]);
    if (peer.child.exitCode === null) peer.child.kill('SIGKILL');
  };
  try {
    const createPerSec = { value: 150 };
    const shots: Record<string, DrainShot[]> = {};
    const ratios = {
      fetch: [] as number[],
      fetchPg: [] as number[],
      ledger: [] as number[],
      pgboss: [] as number[],
      graphile: [] as number[],
      timers: [] as number[],
      noop: [] as number[],
    };
    const loads: string[] = [];
    const rPid = await redisPid(options.redisUrl).catch(() => Number.NaN);
    const common: CpuRoles = {
      redis: () => (Number.isFinite(rPid) ? [rPid] : []),
      postgres: () => pidsNamed('postgres'),
    };
    for (let r = 0; r < options.rounds; r++) {
      loads.push(loadNow());
      const inRound: Partial<Record<Contestant, DrainShot>> = {};
      for (const kind of rotated(options.contestants, r)) {
        const tag = `${kind}-${r}`;
        const shot =
          kind === 'tickwork'
            ? await tickworkDrain(options.tw, options.token, sink, count, tag, createPerSec, 2, {
                worker: () => options.tw.workers.map((w) => w.child.pid!),
                api: () => [options.tw.api.child.pid!],
                ...common,
              })
            : await (async () => {
                peers.set(kind, await startPeer(kind, env));
                try {
                  const peer = peers.get(kind)!;
                  return await peerDrain(peer, kind, sink, count, tag, { worker: () => [peer.child.pid!], ...common });
                } finally {
                  await closePeer(kind);
                }
              })();
        sink.received.length = 0;
        inRound[kind] = shot;
        shots[kind] ??= [];
        shots[kind].push(shot);
        console.log(
          `  drain round ${r + 1}/${options.rounds} ${kind.padEnd(13)} ${shot.perSec}/s, last-delivery lag p99 ${shot.lagP99Ms} ms; ` +
            `CPU ms per occurrence ${JSON.stringify(shot.cpuMsPerOccurrence)}`,
        );
        if (shot.syscallsPerOccurrence)
          console.log(`    syscalls ${kind} per occurrence ${JSON.stringify(shot.syscallsPerOccurrence)}`);
        if (shot.account) console.log(`    account ${kind} per occurrence ${JSON.stringify(shot.account)}`);
        await sleep(500);
      }
      const tick = inRound.tickwork?.perSec ?? Number.NaN;
      if (inRound['bullmq-fetch']) ratios.fetch.push(tick / inRound['bullmq-fetch'].perSec);
      if (inRound['bullmq-fetch-pg']) ratios.fetchPg.push(tick / inRound['bullmq-fetch-pg'].perSec);
      if (inRound['bullmq-fetch-pg'] && inRound['bullmq-fetch'])
        ratios.ledger.push(inRound['bullmq-fetch-pg'].perSec / inRound['bullmq-fetch'].perSec);
      if (inRound.pgboss) ratios.pgboss.push(tick / inRound.pgboss.perSec);
      if (inRound.graphile) ratios.graphile.push(tick / inRound.graphile.perSec);
      if (inRound.timers) ratios.timers.push(tick / inRound.timers.perSec);
      if (inRound['bullmq-fetch'] && inRound['bullmq-noop'])
        ratios.noop.push(inRound['bullmq-fetch'].perSec / inRound['bullmq-noop'].perSec);
    }
    const perContestant: DrainFigures['perContestant'] = {};
    for (const [kind, list] of Object.entries(shots)) {
      perContestant[kind] = {
        perSec: median(list.map((s) => s.perSec)),
        lagP99Ms: median(list.map((s) => s.lagP99Ms)),
        shots: list.map((s) => s.perSec),
        cpuMsPerOccurrence: Object.fromEntries(
          Object.keys(list[0]?.cpuMsPerOccurrence ?? {}).map((role) => [
            role,
            median(list.map((s) => s.cpuMsPerOccurrence?.[role] ?? Number.NaN)),
          ]),
        ),
      };
    }
    return {
      count,
      rounds: options.rounds,
      perContestant,
      tickworkOverBullmqFetch: round(median(ratios.fetch), 3),
      tickworkOverBullmqFetchPg: round(median(ratios.fetchPg), 3),
      bullmqFetchPgOverBullmqFetch: round(median(ratios.ledger), 3),
      tickworkOverPgboss: round(median(ratios.pgboss), 3),
      tickworkOverGraphile: round(median(ratios.graphile), 3),
      tickworkOverTimers: round(median(ratios.timers), 3),
      bullmqFetchOverNoop: round(median(ratios.noop), 3),
      loads,
    };
  } finally {
    for (const kind of [...peers.keys()]) await closePeer(kind);
  }
}

export interface ScaleFigures {
  count: number;
  rows: Array<{ workers: number; perSec: number; perWorker: number; perWorkerCpuSecond: number; shots: number[] }>;
}

/** The drain with 1, 2, 3 workers, up then down each round, so no count always runs warm or cold. */
export async function scaleOut(options: {
  tw: Deployment;
  token: string;
  sink: Sink;
  count: number;
  rounds: number;
  maxWorkers: number;
}): Promise<ScaleFigures> {
  const { tw, sink, count } = options;
  const perSec: Record<number, number[]> = {};
  const perCpu: Record<number, number[]> = {};
  const createPerSec = { value: 150 };
  const counts = Array.from({ length: options.maxWorkers }, (_, i) => i + 1);
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? counts : [...counts].reverse();
    for (const n of order) {
      while (tw.workers.length < n) await tw.addWorker();
      while (tw.workers.length > n) await tw.removeWorker();
      const cpuBefore = tw.workers.reduce((sum, w) => sum + cpuSecondsOf(w.child.pid!), 0);
      const shot = await tickworkDrain(tw, options.token, sink, count, `scale-${n}-${r}`, createPerSec);
      const cpu = tw.workers.reduce((sum, w) => sum + cpuSecondsOf(w.child.pid!), 0) - cpuBefore;
      sink.received.length = 0;
      perSec[n] ??= [];
      perSec[n].push(shot.perSec);
      perCpu[n] ??= [];
      perCpu[n].push(count / Math.max(cpu, 0.01));
      console.log(
        `  scale round ${r + 1}/${options.rounds} workers=${n} ${shot.perSec}/s, ${Math.round(count / Math.max(cpu, 0.01))} deliveries per worker CPU-second`,
      );
    }
  }
  return {
    count,
    rows: counts.map((n) => ({
      workers: n,
      perSec: median(perSec[n]!),
      perWorker: Math.round(median(perSec[n]!) / n),
      perWorkerCpuSecond: Math.round(median(perCpu[n]!)),
      shots: perSec[n]!,
    })),
  };
}

export { startSink };

export interface LeverFigures {
  env: Record<string, string>;
  count: number;
  rounds: number;
  baseline: number[];
  variant: number[];
  variantOverBaseline: number;
  /** Peak RSS of the worker after each shot, MiB. */
  baselineRssMiB: number[];
  variantRssMiB: number[];
  /** CPU ms per occurrence of each shot (worker, Postgres, Redis, box), and the median B/A of each. */
  baselineCpuMs: Array<Record<string, number>>;
  variantCpuMs: Array<Record<string, number>>;
  cpuVariantOverBaseline: Record<string, number>;
  /** Read and write syscalls per occurrence of each shot (the worker, the bench's Redis). */
  baselineSyscalls: Array<Record<string, number>>;
  variantSyscalls: Array<Record<string, number>>;
}

/**
 * One lever, side by side: the same drain with a worker started with the default environment (A)
 * and with `env` (B), alternating A/B order each round; the figure is the median of B/A per round.
 */
export async function compareLever(options: {
  tw: Deployment;
  token: string;
  sink: Sink;
  count: number;
  rounds: number;
  env: Record<string, string>;
  /** The baseline's environment (A); B's is this and `env`. */
  baseEnv?: Record<string, string>;
  /** Redis settings (CONFIG SET) of the variant's shots; the baseline's get their values as found. */
  redisConfig?: Record<string, string>;
}): Promise<LeverFigures> {
  const redisConfig = options.redisConfig ?? {};
  const redis = new Redis(options.tw.env.REDIS_URL);
  const found: Record<string, string> = {};
  for (const name of Object.keys(redisConfig)) found[name] = ((await redis.config('GET', name)) as string[])[1]!;
  const { tw, sink, count } = options;
  const createPerSec = { value: 150 };
  const a: number[] = [];
  const b: number[] = [];
  const ratios: number[] = [];
  const rss: Record<string, number[]> = { A: [], B: [] };
  const cpuMs: Record<string, Array<Record<string, number>>> = { A: [], B: [] };
  const syscalls: Record<string, Array<Record<string, number>>> = { A: [], B: [] };
  accounting = process.env.BENCH_ACCOUNT ? { databaseUrl: tw.db.url, redisUrl: tw.env.REDIS_URL! } : undefined;
  const rPid = await redisPid(options.tw.env.REDIS_URL).catch(() => Number.NaN);
  for (let r = 0; r < options.rounds; r++) {
    const shots: Record<string, number> = {};
    for (const variant of rotated(['A', 'B'], r)) {
      while (tw.workers.length) await tw.removeWorker();
      const baseEnv = options.baseEnv ?? {};
      await tw.addWorker(variant === 'B' ? { ...baseEnv, ...options.env } : baseEnv);
      for (const [name, value] of Object.entries(variant === 'B' ? redisConfig : found))
        await redis.config('SET', name, value);
      const shot = await tickworkDrain(tw, options.token, sink, count, `lever-${variant}-${r}`, createPerSec, 2, {
        worker: () => tw.workers.map((w) => w.child.pid!),
        postgres: () => pidsNamed('postgres'),
        redis: () => (Number.isFinite(rPid) ? [rPid] : []),
      });
      sink.received.length = 0;
      shots[variant] = shot.perSec;
      const peak = rssOf(tw.workers[0]!.child.pid!).peakMiB;
      rss[variant]!.push(peak);
      cpuMs[variant]!.push(shot.cpuMsPerOccurrence ?? {});
      syscalls[variant]!.push(shot.syscallsPerOccurrence ?? {});
      console.log(
        `  lever round ${r + 1}/${options.rounds} ${variant === 'A' ? 'default' : JSON.stringify({ ...options.env, ...redisConfig })}: ${shot.perSec}/s, worker peak RSS ${peak} MiB, CPU ms per occurrence ${JSON.stringify(shot.cpuMsPerOccurrence)}`,
      );
      console.log(`    syscalls per occurrence ${JSON.stringify(shot.syscallsPerOccurrence ?? {})}`);
      if (shot.account) console.log(`    account per occurrence ${JSON.stringify(shot.account)}`);
    }
    a.push(shots.A!);
    b.push(shots.B!);
    ratios.push(shots.B! / shots.A!);
  }
  for (const [name, value] of Object.entries(found)) await redis.config('SET', name, value);
  redis.disconnect();
  return {
    env: { ...options.env, ...redisConfig },
    count,
    rounds: options.rounds,
    baseline: a,
    variant: b,
    variantOverBaseline: round(median(ratios), 3),
    baselineRssMiB: rss.A!,
    variantRssMiB: rss.B!,
    baselineCpuMs: cpuMs.A!,
    variantCpuMs: cpuMs.B!,
    baselineSyscalls: syscalls.A!,
    variantSyscalls: syscalls.B!,
    cpuVariantOverBaseline: Object.fromEntries(
      Object.keys(cpuMs.A![0] ?? {}).map((role) => [
        role,
        round(median(cpuMs.A!.map((a, i) => (cpuMs.B![i]?.[role] ?? Number.NaN) / (a[role] ?? Number.NaN))), 3),
      ]),
    ),
  };
}
