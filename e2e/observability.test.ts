/**
 * What an operator sees of real api and worker processes: the worker's /metrics before anything
 * happened, and after a callback that is retried once and then succeeds; every metric the
 * dashboard and alerts use, really exported by one of the two; and JSON logs that name the
 * request or the occurrence on every line while never showing a secret or a callback body.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  sampleValue,
  type MetricFamily,
  ADMIN_TOKEN,
  call,
  startApi,
  startWorker,
  type FleetEnv,
  type Proc,
  eventually,
  logLinesOf,
  startSink,
  type Sink,
  deletePrefix,
  scrape,
} from '@tickwork/testkit';
import {
  DASHBOARD_METRICS,
  METRIC_LABELS,
  PROMETHEUS_SYNTHETIC_METRICS,
  REPLICA_METRICS,
  familyOf,
} from './lib/metric-names.ts';

const TARGET_SECRET = 'target-header-secret-5d1f0c';
const BODY_MARKER = 'callback-body-marker-9a7e21';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc;
let sink: Sink;
let apiKey: string;
let signingSecret: string;
let jobId: string;
/** The worker's first scrape, taken before any service or job exists. */
let freshWorker: Map<string, MetricFamily>;

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_obs');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix(), LOG_LEVEL: 'debug' };
  sink = await startSink();
  let answered = 0;
  sink.respond = () => (++answered === 1 ? { status: 503 } : { status: 200 });
  [api, worker] = await Promise.all([startApi(env), startWorker(env)]);
  freshWorker = await scrape(worker.url);

  const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'observed' } });
  apiKey = service.body.apiKey;
  signingSecret = service.body.signingSecret;
  const created = await call(api, 'POST', '/v1/jobs', {
    token: apiKey,
    body: {
      name: 'flaky-once',
      schedule: { at: new Date(Date.now() + 1_500).toISOString() },
      target: {
        url: `${sink.url}/flaky`,
        headers: { authorization: `Bearer ${TARGET_SECRET}` },
        body: { marker: BODY_MARKER },
      },
      retry: { maxAttempts: 3, backoff: { type: 'fixed', delayMs: 200 } },
    },
  });
  expect(created.status).toBe(201);
  jobId = created.body.id;
  await sink.waitFor((received) => received.length >= 2, 20_000, 'the failed attempt and its retry');
});

afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

describe('worker metrics', () => {
  it('start every labelled counter at 0, so dashboards show 0 rather than "No data"', () => {
    const triggers = ['schedule', 'manual', 'replay'];
    const expected: Array<[string, Record<string, string>]> = [];
    for (const trigger of triggers) {
      for (const status of ['succeeded', 'failed', 'dead', 'retrying', 'skipped'])
        expected.push(['tickwork_runs_total', { status, trigger }]);
      expected.push(['tickwork_retries_total', { trigger }]);
    }
    for (const kind of ['missing', 'stuck', 'catchup', 'stale', 'orphan', 'run'])
      expected.push(['tickwork_reconcile_repairs_total', { kind }]);
    expect(expected.map(([name, labels]) => [name, labels, sampleValue(freshWorker, name, labels)])).toEqual(
      expected.map(([name, labels]) => [name, labels, 0]),
    );
  });

  it('counts the retry and the success, and observes fire lag on the first attempt only', async () => {
    const families = await eventually(
      async () => {
        const scraped = await scrape(worker.url);
        return sampleValue(scraped, 'tickwork_runs_total', { status: 'succeeded', trigger: 'schedule' }) === 1
          ? scraped
          : undefined;
      },
      10_000,
      'the succeeded run in the worker metrics',
    );

    expect(sampleValue(families, 'tickwork_runs_total', { status: 'retrying', trigger: 'schedule' })).toBe(1);
    expect(sampleValue(families, 'tickwork_retries_total', { trigger: 'schedule' })).toBe(1);
    expect(sampleValue(families, 'tickwork_callback_duration_seconds_count')).toBe(2);
    expect(sampleValue(families, 'tickwork_fire_lag_seconds_count')).toBe(1);
    const lag = sampleValue(families, 'tickwork_fire_lag_seconds_sum')!;
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(60);
    expect(sampleValue(families, 'tickwork_ready')).toBe(1);
    expect(sampleValue(families, 'tickwork_db_pool_total')).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, 'tickwork_queue_jobs', { state: 'waiting' })).toBeGreaterThanOrEqual(0);
    expect(families.get('tickwork_reconcile_repairs_total')?.type).toBe('counter');
    expect(families.has('process_cpu_seconds_total')).toBe(true);

    const run = await eventually(
      async () => {
        const page = await call(api, 'GET', `/v1/jobs/${jobId}/runs`, { token: apiKey });
        return page.body.items[0]?.status === 'succeeded' ? page.body.items[0] : undefined;
      },
      10_000,
      'the run to be recorded',
    );
    expect(run.attempts).toBe(2);
  });
});

describe('the metric contract with infra/ (dashboard, alerts, KEDA)', () => {
  it('every metric they use is exported by the api or the worker, with the labels they select on', async () => {
    const [fromApi, fromWorker] = await Promise.all([scrape(api.url), scrape(worker.url)]);
    const exported = new Map<string, Set<string>>();
    for (const families of [fromApi, fromWorker]) {
      for (const family of families.values()) {
        const labels = exported.get(family.name) ?? new Set<string>();
        exported.set(family.name, labels);
        for (const sample of family.samples) {
          exported.set(sample.name, exported.get(sample.name) ?? new Set());
          for (const label of Object.keys(sample.labels)) labels.add(label);
        }
      }
    }
    const missing = DASHBOARD_METRICS.filter(
      // The replica's series need an api with DATABASE_READ_URL: e2e/replica.test.ts checks them.
      (name) => !PROMETHEUS_SYNTHETIC_METRICS.includes(name) && !REPLICA_METRICS.includes(name) && !exported.has(name),
    );
    expect(missing).toEqual([]);
    for (const [family, labels] of Object.entries(METRIC_LABELS)) {
      if ((REPLICA_METRICS as readonly string[]).includes(family)) continue;
      // A counter nothing has incremented yet (the reconciler's repairs) shows no labels.
      if (family === 'tickwork_reconcile_repairs_total' && exported.get(family)?.size === 0) continue;
      expect([...(exported.get(family) ?? [])], family).toEqual(expect.arrayContaining([...labels]));
    }
    // Every histogram series the dashboard reads belongs to a family that is a histogram.
    for (const name of DASHBOARD_METRICS.filter((n) => /_(bucket|sum|count)$/.test(n))) {
      const family = familyOf(name);
      expect(fromApi.get(family)?.type ?? fromWorker.get(family)?.type, name).toBe('histogram');
    }
  });

  it('the api exports the HTTP metrics and the worker the delivery metrics', async () => {
    const [fromApi, fromWorker] = await Promise.all([scrape(api.url), scrape(worker.url)]);
    expect(fromApi.has('http_request_duration_seconds')).toBe(true);
    for (const name of [
      'tickwork_runs_total',
      'tickwork_fire_lag_seconds',
      'tickwork_callback_duration_seconds',
      'tickwork_retries_total',
    ]) {
      expect(fromWorker.has(name), name).toBe(true);
    }
    for (const shared of ['tickwork_queue_jobs', 'tickwork_schedulers', 'tickwork_ready', 'tickwork_db_pool_total']) {
      expect(fromApi.has(shared) && fromWorker.has(shared), shared).toBe(true);
    }
  });
});

describe('logs', () => {
  it('never show a signing secret, an api key, a target header or a callback body', () => {
    const everything = [...api.output, ...worker.output].join('');
    expect(everything.length).toBeGreaterThan(0);
    for (const secret of [TARGET_SECRET, BODY_MARKER, signingSecret, apiKey, ADMIN_TOKEN]) {
      expect(everything).not.toContain(secret);
    }
  });

  it('carry the request id on every api line about a request', () => {
    const lines = logLinesOf(api);
    const aboutRequests = lines.filter((line) => 'req' in line || 'res' in line);
    expect(aboutRequests.length).toBeGreaterThan(0);
    for (const line of aboutRequests) expect(line.reqId).toEqual(expect.any(String));
  });

  it('carry jobId, runId and attempt on every worker line about an attempt', async () => {
    // The worker writes its lines 4 KiB or a second at a time: the retry's line may still be on its way.
    const attempts = await eventually(
      async () => {
        const about = logLinesOf(worker).filter((line) => line.jobId === jobId && line.runId !== undefined);
        const seen = new Set(about.map((line) => line.attempt));
        return seen.has(1) && seen.has(2) ? about : undefined;
      },
      5_000,
      "the worker's lines about both attempts",
    );
    expect(attempts.map((line) => line.attempt)).toEqual(expect.arrayContaining([1, 2]));
    for (const line of attempts) {
      expect(line.runId).toEqual(expect.any(String));
      expect(line.attempt).toEqual(expect.any(Number));
    }
  });
});
