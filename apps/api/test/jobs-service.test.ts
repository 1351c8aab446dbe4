/**
 * The jobs service tier on its own, without Fastify: real Postgres and Redis, and the write order
 * it states checked where each write can fail — Redis refusing before a commit, a commit failing
 * after Redis accepted, Redis refusing a removal after a commit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { pino } from 'pino';
import { uuidv7, type CreateJobBody } from '@tickwork/core';
import { findServiceById, insertService, setServiceDisabled } from '@tickwork/db';
import {
  createTestDatabase,
  deletePrefix,
  freePort,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
} from '@tickwork/testkit';
import { FireQueue } from '@tickwork/queue';
import { JobsService, type JobsServiceDeps } from '../src/services/jobs.ts';

let db: TestDatabase;
let prefix: string;
let redisUrl: string;
let fireQueue: FireQueue;
/** The same queue behind a port nothing listens on: every Redis call fails, within its budget. */
let redisAway: FireQueue;
const warnings: Array<{ msg: string; jobId?: string; serviceId?: string }> = [];

beforeAll(async () => {
  db = await createTestDatabase('tw_jobs_service');
  prefix = testPrefix();
  redisUrl = testBaseUrls().redisUrl;
  fireQueue = new FireQueue({ redisUrl, prefix });
  redisAway = new FireQueue({ redisUrl: `redis://127.0.0.1:${await freePort()}`, prefix, timeoutMs: 300 });
});
afterAll(async () => {
  await Promise.allSettled([fireQueue?.close(), redisAway?.close()]);
  await db?.drop();
  if (prefix) await deletePrefix(redisUrl, prefix);
});

const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) });

function jobsService(overrides: Partial<JobsServiceDeps> = {}): JobsService {
  return new JobsService({
    db: db.db,
    readDb: db.db,
    fireQueue,
    log,
    announceAuthChange: async () => {},
    secretKeys: { current: 'test-secret-key-0123456789-0123456789' },
    actor: { kind: 'key', id: 'test-key' },
    ...overrides,
  });
}

async function newService(maxJobs?: number) {
  const row = await insertService(db.db, {
    id: uuidv7(),
    name: `svc-${uuidv7()}`,
    signingSecret: 'sealed',
    ...(maxJobs === undefined ? {} : { maxJobs }),
  });
  return { serviceId: row.id, minIntervalMs: row.min_interval_ms };
}

const hourly = (name: string): CreateJobBody => ({
  name,
  schedule: { every: '1h' },
  target: { url: 'https://example.com/hook' },
});
const schedulerOf = (jobId: string, version: number) => fireQueue.queue.getJobScheduler(`job:${jobId}:v${version}`);
const jobRows = (serviceId: string) =>
  db.db.selectFrom('jobs').select(['id', 'version', 'state']).where('service_id', '=', serviceId).execute();

/** Makes every COMMIT that wrote a row of `table` named `name` fail, until the returned function is called. */
async function failCommitsOf(table: 'jobs' | 'services', name: string): Promise<() => Promise<void>> {
  const fn = `refuse_${table}_commit`;
  await sql`
    CREATE FUNCTION ${sql.raw(fn)}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.name = ${sql.lit(name)} THEN RAISE EXCEPTION 'refused at commit'; END IF;
      RETURN NULL;
    END $$`.execute(db.db);
  await sql`
    CREATE CONSTRAINT TRIGGER ${sql.raw(fn)} AFTER INSERT OR UPDATE ON ${sql.table(table)}
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${sql.raw(fn)}()`.execute(db.db);
  return async () => {
    await sql`DROP TRIGGER ${sql.raw(fn)} ON ${sql.table(table)}`.execute(db.db);
    await sql`DROP FUNCTION ${sql.raw(fn)}()`.execute(db.db);
  };
}

describe('create', () => {
  it('registers, then inserts; the job counts from its clock', async () => {
    const creator = await newService();
    const now = Date.parse('2030-01-01T00:00:00Z');
    const row = await jobsService({ clock: () => now }).create(creator, hourly('clocked'));
    expect(row.created_at.getTime()).toBe(now);
    expect(row.next_run_at?.getTime()).toBe(now + 3_600_000);
    expect(await schedulerOf(row.id, 1)).toMatchObject({ every: 3_600_000 });
  });

  it('writes nothing when Redis refuses', async () => {
    const creator = await newService();
    await expect(jobsService({ fireQueue: redisAway }).create(creator, hourly('no-redis'))).rejects.toMatchObject({
      code: 'unavailable',
    });
    expect(await jobRows(creator.serviceId)).toEqual([]);
  });

  it('takes the registration back before it answers when the commit fails', async () => {
    const full = await newService(0);
    const before = await fireQueue.queue.getJobSchedulersCount();
    await expect(jobsService().create(full, hourly('one-too-many'))).rejects.toMatchObject({
      code: 'quota_exceeded',
      quota: 'maxJobs',
    });
    expect(await fireQueue.queue.getJobSchedulersCount()).toBe(before);
    expect(await jobRows(full.serviceId)).toEqual([]);
  });
});

describe('patch', () => {
  it('registers the new version before its commit and removes the old one after it', async () => {
    const creator = await newService();
    const jobs = jobsService();
    const job = await jobs.create(creator, hourly('patched'));
    const patched = await jobs.patch(creator.serviceId, job.id, { schedule: { every: '2h' } }, 'W/"1"');
    expect(patched.version).toBe(2);
    expect(await schedulerOf(job.id, 2)).toMatchObject({ every: 7_200_000 });
    expect(await schedulerOf(job.id, 1)).toBeUndefined();
  });

  it('keeps the old version and takes the new registration back when the commit fails', async () => {
    const creator = await newService();
    const jobs = jobsService();
    const job = await jobs.create(creator, hourly('patch-fails-at-commit'));
    const restore = await failCommitsOf('jobs', 'patch-fails-at-commit');
    try {
      await expect(jobs.patch(creator.serviceId, job.id, { schedule: { every: '2h' } })).rejects.toThrow(
        /refused at commit/,
      );
    } finally {
      await restore();
    }
    expect(await jobRows(creator.serviceId)).toEqual([{ id: job.id, version: 1, state: 'active' }]);
    expect(await schedulerOf(job.id, 1)).toMatchObject({ every: 3_600_000 });
    expect(await schedulerOf(job.id, 2)).toBeUndefined();
  });

  it('answers 412 to a stale If-Match and changes nothing', async () => {
    const creator = await newService();
    const jobs = jobsService();
    const job = await jobs.create(creator, hourly('stale'));
    await expect(jobs.patch(creator.serviceId, job.id, { description: 'x' }, 'W/"7"')).rejects.toMatchObject({
      code: 'precondition_failed',
    });
    expect(await jobRows(creator.serviceId)).toEqual([{ id: job.id, version: 1, state: 'active' }]);
  });
});

describe('removals after the commit', () => {
  it('pause and delete stand while Redis is away; what they could not remove is reported', async () => {
    const creator = await newService();
    const job = await jobsService().create(creator, hourly('paused-without-redis'));
    const other = await jobsService().create(creator, hourly('deleted-without-redis'));
    const away = jobsService({ fireQueue: redisAway });
    warnings.length = 0;
    expect(await away.pause(creator.serviceId, job.id)).toMatchObject({ state: 'paused', version: 2 });
    await away.delete(creator.serviceId, other.id);
    expect(await jobRows(creator.serviceId)).toEqual([{ id: job.id, version: 2, state: 'paused' }]);
    // Left to the reconciler; workers skip them, as Postgres says.
    expect(await schedulerOf(job.id, 1)).toBeTruthy();
    expect(await schedulerOf(other.id, 1)).toBeTruthy();
    expect(warnings.map((w) => [w.jobId, w.msg])).toEqual([
      [job.id, 'could not remove the scheduler; the reconciler will'],
      [other.id, 'could not remove the scheduler; the reconciler will'],
    ]);
  });

  it('a change of a paused job needs no Redis: nothing of it fires', async () => {
    const creator = await newService();
    const job = await jobsService().create(creator, { ...hourly('patched-while-paused'), paused: true });
    const patched = await jobsService({ fireQueue: redisAway }).patch(creator.serviceId, job.id, { description: 'x' });
    expect(patched).toMatchObject({ version: 2, state: 'paused', description: 'x' });
  });

  it('resume is refused while Redis is away, and the job stays paused', async () => {
    const creator = await newService();
    const job = await jobsService().create(creator, { ...hourly('resume-without-redis'), paused: true });
    await expect(jobsService({ fireQueue: redisAway }).resume(creator.serviceId, job.id)).rejects.toMatchObject({
      code: 'unavailable',
    });
    expect(await jobRows(creator.serviceId)).toEqual([{ id: job.id, version: 1, state: 'paused' }]);
  });
});

describe('requested runs', () => {
  it('records the run before its BullMQ job, and takes it back when Redis refuses', async () => {
    const creator = await newService();
    const job = await jobsService().create(creator, hourly('run-now'));
    const run = await jobsService().trigger(creator.serviceId, job.id);
    const queued = await fireQueue.queue.getJob(`manual:${job.id}:${run.id}`);
    expect(queued?.data).toEqual({ jobId: job.id, version: 1, runId: run.id });

    await expect(jobsService({ fireQueue: redisAway }).trigger(creator.serviceId, job.id)).rejects.toMatchObject({
      code: 'unavailable',
    });
    const runs = await db.db.selectFrom('runs').select('id').where('job_id', '=', job.id).execute();
    expect(runs).toEqual([{ id: run.id }]);
  });
});

describe('version history', () => {
  const changesOf = async (jobId: string) =>
    (
      await db.db
        .selectFrom('job_versions')
        .select(['change', 'version'])
        .where('job_id', '=', jobId)
        .orderBy('id', 'desc')
        .execute()
    ).map((v) => `${v.change}@${v.version}`);

  it('records nothing of a change that is taken back: a create, a patch or a run now that failed', async () => {
    const creator = await newService();
    const jobs = jobsService();
    await expect(jobsService({ fireQueue: redisAway }).create(creator, hourly('never-made'))).rejects.toMatchObject({
      code: 'unavailable',
    });
    expect(
      await db.db.selectFrom('job_versions').select('id').where('service_id', '=', creator.serviceId).execute(),
    ).toEqual([]);
    const job = await jobs.create(creator, hourly('history-takeback'));
    const restore = await failCommitsOf('jobs', 'history-takeback');
    try {
      await expect(jobs.patch(creator.serviceId, job.id, { schedule: { every: '2h' } })).rejects.toThrow(
        /refused at commit/,
      );
    } finally {
      await restore();
    }
    await expect(jobsService({ fireQueue: redisAway }).trigger(creator.serviceId, job.id)).rejects.toMatchObject({
      code: 'unavailable',
    });
    expect(await changesOf(job.id)).toEqual(['create@1']);
    await jobs.trigger(creator.serviceId, job.id);
    await jobs.skip(creator.serviceId, job.id, { count: 1 });
    await jobs.pause(creator.serviceId, job.id, new Date(Date.now() + 60_000).toISOString());
    await jobs.delete(creator.serviceId, job.id);
    expect(await changesOf(job.id)).toEqual(['delete@2', 'pause@2', 'skip@1', 'trigger@1', 'create@1']);
  });

  it('refuses a change without an actor before writing anything', async () => {
    const creator = await newService();
    const anonymous = jobsService({ actor: undefined });
    await expect(anonymous.create(creator, hourly('anonymous'))).rejects.toThrow(/needs an actor/);
    expect(await jobRows(creator.serviceId)).toEqual([]);
  });
});

describe('a service disabled and enabled', () => {
  it('disables in Postgres, tells the api instances, then removes the schedules', async () => {
    const creator = await newService();
    const seen: Array<{ disabled: boolean; scheduled: boolean }> = [];
    const jobs = jobsService({
      announceAuthChange: async () => {
        const service = await findServiceById(db.db, creator.serviceId);
        seen.push({ disabled: service?.disabled_at != null, scheduled: (await schedulerOf(job.id, 1)) !== undefined });
      },
    });
    const job = await jobs.create(creator, hourly('of-a-disabled-service'));
    expect((await jobs.disableService(creator.serviceId)).disabled_at).not.toBeNull();
    expect(await schedulerOf(job.id, 1)).toBeUndefined();
    expect((await jobs.enableService(creator.serviceId)).disabled_at).toBeNull();
    expect(await schedulerOf(job.id, 1)).toMatchObject({ every: 3_600_000 });
    // At each announcement Postgres had committed; the schedules had not yet left, or were back.
    expect(seen).toEqual([
      { disabled: true, scheduled: true },
      { disabled: false, scheduled: true },
    ]);
  });

  it('takes the registrations of an enable back when its commit fails, and leaves an enabled one alone', async () => {
    const creator = await newService();
    const jobs = jobsService();
    const job = await jobs.create(creator, hourly('enable-fails-at-commit'));
    const service = await findServiceById(db.db, creator.serviceId);
    let restore = await failCommitsOf('services', service!.name);
    try {
      // Enabled already: a failed enable must not take its live schedules away.
      await expect(jobs.enableService(creator.serviceId)).rejects.toThrow(/refused at commit/);
      expect(await schedulerOf(job.id, 1)).toBeTruthy();
      await restore();
      await jobs.disableService(creator.serviceId);
      restore = await failCommitsOf('services', service!.name);
      await expect(jobs.enableService(creator.serviceId)).rejects.toThrow(/refused at commit/);
    } finally {
      await restore();
    }
    expect((await findServiceById(db.db, creator.serviceId))?.disabled_at).not.toBeNull();
    expect(await schedulerOf(job.id, 1)).toBeUndefined();
    await setServiceDisabled(db.db, creator.serviceId, false);
  });
});
