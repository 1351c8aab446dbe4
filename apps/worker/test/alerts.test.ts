/**
 * The alert watch with several instances on one database, as every api and worker process runs
 * it: passes that race each other open one alert per job and send one webhook per event, and a
 * job row held by someone else (the fire path, a delete) is left for a later pass, not waited on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { encryptSecret, generateSigningSecret, uuidv7 } from '@tickwork/core';
import { insertService, setAlertWebhookUrl } from '@tickwork/db';
import { createTestDatabase, startSink, type Sink, type TestDatabase } from '@tickwork/testkit';
import { createDispatchers } from '../src/deliver.ts';
import { startAlertWatch, type AlertWatch } from '../src/alerts.ts';

const SECRET_KEY = 'test-secret-key-0123456789-0123456789';
const policy = { allowPrivate: true, allowedHosts: [] };
let db: TestDatabase;
let sink: Sink;
const dispatchers = createDispatchers(policy);
const watches: AlertWatch[] = [];

beforeAll(async () => {
  db = await createTestDatabase('tw_alert_watch');
  sink = await startSink();
});
afterAll(async () => {
  await Promise.all(watches.map((watch) => watch.close()));
  await Promise.allSettled([dispatchers.guarded.close(), dispatchers.allowListed.close()]);
  await sink?.close();
  await db?.drop();
});

async function serviceWithJobs(
  name: string,
  count: number,
  calendarIds: (serviceId: string) => Promise<string[]> = async () => [],
) {
  const service = await insertService(db.db, {
    id: uuidv7(),
    name,
    signingSecret: encryptSecret(generateSigningSecret(), SECRET_KEY),
  });
  await setAlertWebhookUrl(db.db, service.id, `${sink.url}/${name}`);
  const calendars = await calendarIds(service.id);
  // Every second since 30 s ago, due within 1 s, and nothing ever recorded: each one not_fired.
  const since = new Date(Date.now() - 30_000);
  const ids = Array.from({ length: count }, () => uuidv7());
  await db.db
    .insertInto('jobs')
    .values(
      ids.map((id, i) => ({
        id,
        service_id: service.id,
        name: `job-${i}`,
        schedule: JSON.stringify({ everyMs: 1_000 }),
        target: JSON.stringify({ url: 'https://example.com', method: 'POST', headers: {}, timeoutMs: 10_000 }),
        misfire: JSON.stringify({ policy: 'fire_once', graceMs: 60_000 }),
        retry: JSON.stringify({
          maxAttempts: 3,
          backoff: { type: 'exponential', delayMs: 1_000, maxDelayMs: 3_600_000 },
        }),
        state: 'active',
        version: 1,
        jitter_ms: 0,
        overlap: 'allow',
        labels: '{}',
        alert_after_ms: 1_000,
        calendar_ids: calendars,
        created_at: since,
        updated_at: since,
      })),
    )
    .execute();
  return { service, ids };
}

function newWatch(): AlertWatch {
  const watch = startAlertWatch({
    db: db.db,
    logger: pino({ level: 'silent' }),
    secretKeys: { current: SECRET_KEY },
    policy,
    dispatchers,
    // Long: only the passes this file runs, and every job is due again at once only when it asks.
    intervalMs: 3_600_000,
  });
  watches.push(watch);
  return watch;
}

describe('several alert watches on one database', () => {
  it('open one alert per job and send one webhook per alert, however their passes interleave', async () => {
    const { service, ids } = await serviceWithJobs('racing', 120);
    const instances = Array.from({ length: 4 }, () => newWatch());
    // Four rounds of four passes at once (each pass claims 100 jobs per transaction).
    for (let round = 0; round < 4; round++) await Promise.all(instances.map((watch) => watch.pass()));
    const alerts = await db.db.selectFrom('alerts').selectAll().where('service_id', '=', service.id).execute();
    expect(alerts).toHaveLength(ids.length);
    expect(new Set(alerts.map((a) => a.job_id))).toEqual(new Set(ids));
    expect(alerts.every((a) => a.reason === 'not_fired' && a.resolved_at === null)).toBe(true);
    const jobs = await db.db
      .selectFrom('jobs')
      .select(['id', 'open_alert'])
      .where('service_id', '=', service.id)
      .execute();
    const alertOf = new Map(alerts.map((a) => [a.job_id, a.id]));
    for (const job of jobs) expect(job.open_alert?.id).toBe(alertOf.get(job.id));

    // Each alert's webhook: one notification row, delivered; one call per webhook-id.
    for (let round = 0; round < 10; round++) {
      const pending = await db.db
        .selectFrom('alert_notifications')
        .select('id')
        .where('service_id', '=', service.id)
        .where('delivered_at', 'is', null)
        .execute();
      if (pending.length === 0) break;
      await Promise.all(instances.map((watch) => watch.pass()));
    }
    const notifications = await db.db
      .selectFrom('alert_notifications')
      .selectAll()
      .where('service_id', '=', service.id)
      .execute();
    expect(notifications).toHaveLength(ids.length);
    expect(notifications.every((n) => n.delivered_at !== null && n.event === 'alert.opened')).toBe(true);
    const calls = sink.received.filter((r) => r.path === '/racing');
    expect(calls).toHaveLength(ids.length);
    expect(new Set(calls.map((c) => c.headers['webhook-id'])).size).toBe(ids.length);
  });

  it('leaves a job whose row someone else holds for a later pass, without waiting on it', async () => {
    const { ids } = await serviceWithJobs('held', 1);
    const [jobId] = ids as [string];
    const watch = newWatch();
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Watched already (a first pass would add the row; adding one takes a key-share lock).
    const since = new Date(Date.now() - 30_000);
    await db.db.insertInto('alert_watch').values({ job_id: jobId, checked_until: since }).execute();
    // The fire path's lock, held in a transaction of its own from before the pass.
    let locked: () => void = () => {};
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const holder = db.db.transaction().execute(async (trx) => {
      await trx.selectFrom('jobs').select('id').where('id', '=', jobId).forUpdate().execute();
      locked();
      await released;
    });
    await isLocked;
    try {
      const started = Date.now();
      await watch.pass();
      expect(Date.now() - started).toBeLessThan(5_000);
      const none = await db.db.selectFrom('alerts').select('id').where('job_id', '=', jobId).execute();
      expect(none).toEqual([]);
    } finally {
      release();
      await holder;
    }
    await watch.pass();
    const opened = await db.db.selectFrom('alerts').select('reason').where('job_id', '=', jobId).execute();
    expect(opened).toEqual([{ reason: 'not_fired' }]);
  });

  it("expects nothing on a day the job's calendars exclude: no not_fired on a holiday", async () => {
    const today = new Date().toISOString().slice(0, 10);
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const { ids } = await serviceWithJobs('holiday', 1, async (serviceId) => {
      const id = uuidv7();
      await db.db
        .insertInto('calendars')
        .values({
          id,
          service_id: serviceId,
          name: 'holidays',
          timezone: 'UTC',
          dates: [yesterday, today],
          ranges: '[]',
          created_at: new Date(),
          updated_at: new Date(),
        })
        .execute();
      return [id];
    });
    const watch = newWatch();
    await watch.pass();
    const watched = await db.db
      .selectFrom('alert_watch')
      .select('checked_until')
      .where('job_id', '=', ids[0]!)
      .executeTakeFirstOrThrow();
    // Judged up to about a second ago, and nothing opened.
    expect(watched.checked_until.getTime()).toBeGreaterThan(Date.now() - 5_000);
    expect(await db.db.selectFrom('alerts').select('id').where('job_id', '=', ids[0]!).execute()).toEqual([]);
  });
});
