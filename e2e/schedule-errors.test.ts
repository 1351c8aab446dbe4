/**
 * A cron schedule whose next instant cannot be computed, at fire time, with real processes (an
 * api, a worker reconciling every second, a local sink): it never becomes silence. The job is one
 * stored before today's dialect (`H`, which the engine cannot read), with the occurrence an older
 * engine had already put into BullMQ. The worker delivers that occurrence, keeps the job active,
 * counts and logs the error, and retries on every reconcile pass; once the owner PATCHes the
 * schedule, the job fires again and the errors stop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { OCCURRENCE_OPTIONS, schedulerIdOf, type FireJobData } from '@tickwork/queue';
import {
  sampleValue,
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
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
  scrape,
  deletePrefix,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc;
let sink: Sink;
let token: string;

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_sched_err');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  sink = await startSink();
  [api, worker] = await Promise.all([startApi(env), startWorker({ ...env, RECONCILE_INTERVAL_MS: '1000' })]);
  token = (await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'errors' } })).body.apiKey;
});

afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

const scheduleErrors = async () =>
  sampleValue(await scrape(worker.url), 'tickwork_schedule_errors_total') ?? Number.NaN;

describe('a schedule that cannot be computed at fire time', () => {
  it('is delivered, kept active, counted, logged with its job id and retried, until it is fixed', async () => {
    expect(await scheduleErrors()).toBe(0);
    const created = await call(api, 'POST', '/v1/jobs', {
      token,
      body: { name: 'legacy', schedule: { cron: '0 0 1 1 *' }, target: { url: `${sink.url}/legacy` } },
    });
    expect(created.status).toBe(201);
    const jobId: string = created.body.id;

    // As stored before the dialect refused H: the row, and the scheduler with its next occurrence.
    const legacy = 'H * * * * *';
    await sql`update jobs set schedule = ${JSON.stringify({ cron: legacy, timezone: 'UTC' })}::jsonb
      where id = ${jobId}`.execute(db.db);
    const dueAt = Date.now() + 1_500;
    const planter = new Queue<FireJobData>('fire', {
      connection: new Redis(env.REDIS_URL, { maxRetriesPerRequest: null }),
      prefix: env.BULLMQ_PREFIX,
      settings: { repeatStrategy: () => dueAt },
    });
    try {
      await planter.removeJobScheduler(schedulerIdOf(jobId, 1));
      await planter.upsertJobScheduler(
        schedulerIdOf(jobId, 1),
        { pattern: legacy, tz: 'UTC' },
        { name: 'fire', data: { jobId, version: 1 }, opts: OCCURRENCE_OPTIONS },
      );
    } finally {
      await planter.close();
    }

    await sink.waitFor((r) => r.some((x) => x.path === '/legacy'), 20_000, 'the occurrence already in BullMQ');
    const run = await eventually(
      async () => {
        const runs = (await call(api, 'GET', `/v1/jobs/${jobId}/runs`, { token })).body.items;
        return runs[0]?.status === 'succeeded' ? runs[0] : undefined;
      },
      10_000,
      'its run to be recorded',
    );
    expect(Date.parse(run.scheduledFor)).toBe(dueAt);
    // Not completed: the schedule did not end, its instant could not be computed. (What the
    // worker writes reaches the api's cached row within 1 s: the reads above cached it.)
    const job = await eventually(
      async () => {
        const body = (await call(api, 'GET', `/v1/jobs/${jobId}`, { token })).body;
        return body.nextRunAt === null ? body : undefined;
      },
      1_500,
      'the job row as the worker left it',
    );
    expect(job).toMatchObject({ state: 'active', nextRunAt: null });

    // Counted when the worker took the occurrence, and again on each reconcile pass.
    await eventually(async () => ((await scheduleErrors()) >= 3 ? true : undefined), 20_000, 'retries');
    const lines = logLinesOf(worker);
    expect(lines).toContainEqual(
      expect.objectContaining({ jobId, cron: legacy, msg: 'could not compute the next occurrence' }),
    );
    expect(lines).toContainEqual(expect.objectContaining({ cron: legacy, level: 50 }));

    // Its owner fixes it: it fires again, and the errors stop.
    const patched = await call(api, 'PATCH', `/v1/jobs/${jobId}`, {
      token,
      body: { schedule: { cron: '* * * * * *' } },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    await sink.waitFor((r) => r.filter((x) => x.path === '/legacy').length >= 3, 20_000, 'the fixed schedule');
    const settled = await scheduleErrors();
    const before = sink.received.filter((x) => x.path === '/legacy').length;
    await sink.waitFor((r) => r.filter((x) => x.path === '/legacy').length >= before + 3, 20_000, 'more callbacks');
    expect(await scheduleErrors()).toBe(settled);
  });
});
