/**
 * Alerts when a job didn't run, end to end on real processes: two api processes and a worker on
 * one database and Redis, the watch judging every 200 ms in each of them, a local receiver for
 * callbacks and the alert webhook.
 *
 * - A job whose callbacks go dead opens `dead`, and resolves when a later occurrence succeeds;
 *   each is sent to `alertWebhookUrl` once, signed like callbacks (verified with the
 *   standardwebhooks library).
 * - With every worker stopped, a job that never fires opens `not_fired` from the api processes
 *   alone, once although two of them watch; `tickwork_alerts_open` counts it; a worker started
 *   again fires it and the alert resolves.
 * - With the worker running, a job whose scheduler Redis lost (the reconciler is slow here)
 *   opens `not_fired` too: the watch does not depend on what failed. A webhook call answered
 *   503 comes again under the same `webhook-id`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, type ConnectionOptions } from 'bullmq';
import { Webhook } from 'standardwebhooks';
import { FIRE_QUEUE, redisOptionsFrom, schedulerIdOf } from '@tickwork/queue';
import {
  ADMIN_TOKEN,
  call,
  createTestDatabase,
  deletePrefix,
  eventually,
  sampleValue,
  scrape,
  startApi,
  startSink,
  startWorker,
  testBaseUrls,
  testPrefix,
  type FleetEnv,
  type Proc,
  type Received,
  type Sink,
  type TestDatabase,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
let apis: Proc[] = [];
let worker: Proc | undefined;
let sink: Sink;
/** Paths of the receiver that answer 500 (a callback that fails), and paths that fail their first call. */
const failing = new Set<string>();
const failingOnce = new Set<string>();

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_alerts');
  env = {
    DATABASE_URL: db.url,
    REDIS_URL: testBaseUrls().redisUrl,
    BULLMQ_PREFIX: testPrefix(),
    ALERT_WATCH_INTERVAL_MS: '200',
    // The reconciler would put a lost scheduler back within its interval; here it is slow, so
    // the lost scheduler's job stays silent long enough for its alert.
    RECONCILE_INTERVAL_MS: '600000',
  };
  sink = await startSink();
  sink.respond = (received) => {
    if (failingOnce.delete(received.path)) return { status: 503 };
    return { status: failing.has(received.path) ? 500 : 200 };
  };
  apis = await Promise.all([startApi(env), startApi(env)]);
  worker = await startWorker(env);
});
afterAll(async () => {
  await Promise.allSettled([...apis.map((api) => api.stop()), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

function headersOf(received: Received): Record<string, string> {
  return Object.fromEntries(
    Object.entries(received.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]),
  );
}

interface WebhookCall {
  type: string;
  data: { id: string; jobId: string; jobName: string; reason: string; resolvedAt: string | null };
  headers: Record<string, string>;
}

/** The alert webhook calls about a job, verified against its service's signing secret. */
function webhooksOf(service: { name: string; signingSecret: string }, jobId: string): WebhookCall[] {
  const verifier = new Webhook(service.signingSecret);
  return sink.received
    .filter((r) => r.path === `/alerts/${service.name}`)
    .map((r) => ({ ...(verifier.verify(r.body, headersOf(r)) as Omit<WebhookCall, 'headers'>), headers: headersOf(r) }))
    .filter((call) => call.data.jobId === jobId);
}

async function newService(name: string) {
  const created = await call(apis[0]!, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name } });
  expect(created.status).toBe(201);
  const service = created.body as { id: string; name: string; apiKey: string; signingSecret: string };
  const patched = await call(apis[1]!, 'PATCH', `/v1/admin/services/${service.id}`, {
    token: ADMIN_TOKEN,
    body: { alertWebhookUrl: `${sink.url}/alerts/${name}` },
  });
  expect(patched.status).toBe(200);
  expect(patched.body.alertWebhookUrl).toBe(`${sink.url}/alerts/${name}`);
  return service;
}

async function createJob(key: string, body: Record<string, unknown>): Promise<{ id: string }> {
  const created = await call(apis[0]!, 'POST', '/v1/jobs', { token: key, body });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body;
}

async function openAlertsOf(key: string, jobId: string) {
  const listed = await call(apis[1]!, 'GET', `/v1/alerts?state=open&jobId=${jobId}`, { token: key });
  expect(listed.status).toBe(200);
  return listed.body.items as Array<{ id: string; reason: string; scheduledFor: string; resolvedAt: string | null }>;
}

/** Waits until the job has recorded `count` more runs with `status` than it had: time passes, judged by events. */
async function runsPass(key: string, jobId: string, status: string, count: number) {
  const countOf = async () =>
    (await call(apis[0]!, 'GET', `/v1/jobs/${jobId}/runs?status=${status}&limit=100`, { token: key })).body.items
      .length as number;
  const before = await countOf();
  await eventually(async () => ((await countOf()) >= before + count ? true : undefined), 30_000);
}

describe('alerts on real processes', () => {
  it('opens dead when callbacks die, resolves on a later success, and sends each once, signed', async () => {
    const service = await newService('alerts-dead');
    failing.add('/cb/flaky');
    const job = await createJob(service.apiKey, {
      name: 'flaky',
      schedule: { every: '1s' },
      target: { url: `${sink.url}/cb/flaky` },
      retry: { maxAttempts: 1 },
      // Room for a late first run on a loaded box: the reason must be the run's, not not_fired.
      alertAfterMs: 5_000,
    });
    await sink.waitFor(() => webhooksOf(service, job.id).length >= 1, 20_000, 'alert.opened');
    const [opened] = webhooksOf(service, job.id);
    expect(opened).toMatchObject({
      type: 'alert.opened',
      data: { reason: 'dead', jobName: 'flaky', resolvedAt: null },
    });
    expect(opened!.headers['tickwork-event']).toBe('alert.opened');
    const [listed] = await openAlertsOf(service.apiKey, job.id);
    expect(listed).toMatchObject({ id: opened!.data.id, reason: 'dead' });
    const shown = await call(apis[0]!, 'GET', `/v1/jobs/${job.id}`, { token: service.apiKey });
    expect(shown.body.alert).toMatchObject({ id: opened!.data.id, reason: 'dead' });

    failing.delete('/cb/flaky');
    await sink.waitFor(
      () => webhooksOf(service, job.id).some((c) => c.type === 'alert.resolved'),
      20_000,
      'alert.resolved',
    );
    // Several more successes (each watch has judged the job many times since): still one of each.
    await runsPass(service.apiKey, job.id, 'succeeded', 3);
    const calls = webhooksOf(service, job.id);
    const ids = calls.map((c) => `${c.type} ${c.data.id}`);
    // One alert in all: the failures before the success that resolved it are that alert's, and
    // open no second one once it is resolved.
    expect(ids).toEqual([`alert.opened ${opened!.data.id}`, `alert.resolved ${opened!.data.id}`]);
    const resolved = calls.find((c) => c.type === 'alert.resolved')!;
    expect(resolved.data.resolvedAt).not.toBeNull();
    expect(resolved.headers['webhook-id']).not.toBe(opened!.headers['webhook-id']);
    const got = await call(apis[1]!, 'GET', `/v1/alerts/${opened!.data.id}`, { token: service.apiKey });
    expect(got.body.resolvedAt).not.toBeNull();
    expect((await call(apis[0]!, 'GET', `/v1/jobs/${job.id}`, { token: service.apiKey })).body.alert).toBeNull();
    expect((await call(apis[0]!, 'DELETE', `/v1/jobs/${job.id}`, { token: service.apiKey })).status).toBe(204);
  });

  it('opens not_fired from the apis alone with every worker stopped, once, and resolves once one fires', async () => {
    const service = await newService('alerts-no-worker');
    await worker!.stop('SIGTERM');
    const job = await createJob(service.apiKey, {
      name: 'unwatched-by-workers',
      // Two seconds, not one: BullMQ moves an interval scheduler that falls a whole interval behind
      // on to its next slot, and the fire path records the slot it skipped as missed, which rightly
      // opens a second alert. A worker just started on a busy box can be a second late on its first
      // occurrences; this test is about the not_fired alert, not about that.
      schedule: { every: '2s' },
      target: { url: `${sink.url}/cb/ok` },
      alertAfterMs: 2_000,
    });
    const alert = await eventually(async () => (await openAlertsOf(service.apiKey, job.id))[0], 20_000);
    expect(alert.reason).toBe('not_fired');
    await sink.waitFor(() => webhooksOf(service, job.id).length >= 1, 20_000, 'opened');
    for (const api of apis) {
      const open = await eventually(async () => {
        const value = sampleValue(await scrape(api.url), 'tickwork_alerts_open', { reason: 'not_fired' });
        return value !== undefined && value >= 1 ? value : undefined;
      }, 15_000);
      expect(open).toBeGreaterThanOrEqual(1);
    }
    // Both apis keep judging it: a second alert never opens, and the webhook went once.
    const before = (await call(apis[0]!, 'GET', `/v1/jobs/${job.id}`, { token: service.apiKey })).body;
    expect(before.alert).toMatchObject({ id: alert.id, reason: 'not_fired' });
    // Judged on, by both watches, for another 3 s of occurrences after the one it opened for.
    await eventually(async () => {
      const watch = await db.db
        .selectFrom('alert_watch')
        .select('checked_until')
        .where('job_id', '=', job.id)
        .executeTakeFirst();
      return watch && watch.checked_until.getTime() >= Date.parse(alert.scheduledFor) + 3_000 ? true : undefined;
    }, 15_000);
    expect(await openAlertsOf(service.apiKey, job.id)).toHaveLength(1);
    expect(webhooksOf(service, job.id).map((c) => c.type)).toEqual(['alert.opened']);
    const runs = await call(apis[0]!, 'GET', `/v1/jobs/${job.id}/runs`, { token: service.apiKey });
    expect(runs.body.items).toEqual([]);

    worker = await startWorker(env);
    await sink.waitFor(
      () => webhooksOf(service, job.id).some((c) => c.type === 'alert.resolved'),
      30_000,
      'alert.resolved once a worker fires it',
    );
    expect(await openAlertsOf(service.apiKey, job.id)).toEqual([]);
    expect((await call(apis[0]!, 'DELETE', `/v1/jobs/${job.id}`, { token: service.apiKey })).status).toBe(204);
  });

  it('opens not_fired when Redis lost the scheduler (worker running); a failed webhook is retried', async () => {
    const service = await newService('alerts-lost-scheduler');
    failingOnce.add(`/alerts/${service.name}`);
    const job = await createJob(service.apiKey, {
      name: 'lost',
      schedule: { every: '1s' },
      target: { url: `${sink.url}/cb/lost` },
      alertAfterMs: 2_000,
    });
    await sink.waitFor((r) => r.some((c) => c.path === '/cb/lost'), 20_000, 'a first callback');
    const fire = new Queue(FIRE_QUEUE, {
      connection: redisOptionsFrom(env.REDIS_URL, 'worker') as ConnectionOptions,
      prefix: env.BULLMQ_PREFIX,
    });
    try {
      expect(await fire.removeJobScheduler(schedulerIdOf(job.id, 1))).toBe(true);
    } finally {
      await fire.close();
    }
    const alert = await eventually(async () => (await openAlertsOf(service.apiKey, job.id))[0], 20_000);
    expect(alert.reason).toBe('not_fired');
    // The first call answered 503: it comes again, the same notification under the same webhook-id.
    await sink.waitFor(() => webhooksOf(service, job.id).length >= 2, 30_000, 'alert.opened, retried');
    const [first, second] = webhooksOf(service, job.id);
    expect(first!.type).toBe('alert.opened');
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    expect(second!.data).toEqual(first!.data);
    expect(Number(second!.headers['tickwork-attempt'])).toBe(2);
  });
});
