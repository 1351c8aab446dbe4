/**
 * Version history, skip and pause-until (issue 16 §2, §4) with real processes: an api, a worker
 * (stopped and replaced by another in the pause-until test), and a local sink. Each test has a job
 * and a sink path of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  call,
  createTestDatabase,
  deletePrefix,
  eventually,
  startApi,
  startSink,
  startWorker,
  testBaseUrls,
  testPrefix,
  type FleetEnv,
  type Proc,
  type Sink,
  type TestDatabase,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc;
let sink: Sink;
let token: string;
let keyId: string;
let otherToken: string;

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_history');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  sink = await startSink();
  [api, worker] = await Promise.all([startApi(env), startWorker(env)]);
  const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'history' } });
  token = service.body.apiKey;
  keyId = service.body.apiKeyId;
  const other = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'another' } });
  otherToken = other.body.apiKey;
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

type Json = Record<string, any>;

async function createJob(path: string, body: Json = {}): Promise<Json> {
  const created = await call(api, 'POST', '/v1/jobs', {
    token,
    body: { name: path.slice(1), schedule: { every: '1s' }, target: { url: `${sink.url}${path}` }, ...body },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body;
}

const scheduledForAt = (path: string) =>
  sink.received.filter((r) => r.path === path).map((r) => Date.parse(String(r.headers['tickwork-scheduled-for'])));

async function runsOf(jobId: string): Promise<Json[]> {
  return (await call(api, 'GET', `/v1/jobs/${jobId}/runs?limit=100`, { token })).body.items;
}

async function versionsOf(jobId: string, query = ''): Promise<Json> {
  const answer = await call(api, 'GET', `/v1/jobs/${jobId}/versions${query}`, { token });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body;
}

function expectProblem(answer: { status: number; headers: Json; body: Json }, status: number, field?: string) {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  if (field !== undefined) expect(answer.body.errors.map((e: Json) => e.field)).toContain(field);
}

describe('version history', () => {
  it('records every change, its actor and the job as it stood, newest first, paged, readable after delete', async () => {
    const job = await createJob('/history', { schedule: { cron: '0 0 1 1 *' } });
    const patched = await call(api, 'PATCH', `/v1/jobs/${job.id}`, { token, body: { description: 'v2' } });
    expect(patched.body.version).toBe(2);
    // A patch that changes nothing is not a change.
    await call(api, 'PATCH', `/v1/jobs/${job.id}`, { token, body: { description: 'v2' } });
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
    await call(api, 'POST', `/v1/jobs/${job.id}/resume`, { token });
    expect((await call(api, 'POST', `/v1/jobs/${job.id}/trigger`, { token })).status).toBe(202);
    expect((await call(api, 'POST', `/v1/jobs/${job.id}/skip`, { token, body: { count: 1 } })).status).toBe(200);
    expect((await call(api, 'DELETE', `/v1/jobs/${job.id}`, { token })).status).toBe(204);
    expect((await call(api, 'GET', `/v1/jobs/${job.id}`, { token })).status).toBe(404);

    const all = await versionsOf(job.id, '?limit=100');
    expect(all.nextCursor).toBeNull();
    expect(all.items.map((v: Json) => [v.change, v.version])).toEqual([
      ['delete', 4],
      ['skip', 4],
      ['trigger', 4],
      ['resume', 4],
      ['pause', 3],
      ['patch', 2],
      ['create', 1],
    ]);
    for (const entry of all.items) {
      expect(entry.actor).toEqual({ kind: 'key', id: keyId });
      expect(entry.definition.id).toBe(job.id);
      expect(entry.definition.version).toBe(entry.version);
      expect(Date.parse(entry.changedAt)).toBeGreaterThanOrEqual(Date.parse(job.createdAt));
    }
    const byChange = Object.fromEntries(all.items.map((v: Json) => [v.change, v.definition]));
    expect(byChange.create).toMatchObject({ description: null, state: 'active', schedule: { cron: '0 0 1 1 *' } });
    expect(byChange.patch).toMatchObject({ description: 'v2', state: 'active' });
    expect(byChange.pause).toMatchObject({ state: 'paused', nextRunAt: null, pausedUntil: null });
    expect(byChange.resume).toMatchObject({ state: 'active' });
    expect(byChange.skip.skipUntil).not.toBeNull();
    expect(byChange.delete).toMatchObject({
      description: 'v2',
      state: 'active',
      target: { url: `${sink.url}/history` },
    });

    // Paged by cursor: the same entries, in the same order, three at a time.
    const paged: Json[] = [];
    let cursor: string | null = null;
    do {
      const page: Json = await versionsOf(job.id, `?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.items.length).toBeLessThanOrEqual(3);
      paged.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    expect(paged.map((v) => v.id)).toEqual(all.items.map((v: Json) => v.id));

    // Another service does not see it, deleted or not.
    expectProblem(await call(api, 'GET', `/v1/jobs/${job.id}/versions`, { token: otherToken }), 404);
  });

  it('refuses a bad cursor or limit with problem+json naming the field', async () => {
    const job = await createJob('/history-bad', { schedule: { cron: '0 0 1 1 *' } });
    expectProblem(
      await call(api, 'GET', `/v1/jobs/${job.id}/versions?cursor=bm90LWEtY3Vyc29y`, { token }),
      400,
      'querystring.cursor',
    );
    expectProblem(await call(api, 'GET', `/v1/jobs/${job.id}/versions?limit=0`, { token }), 400, 'querystring.limit');
    expectProblem(await call(api, 'GET', '/v1/jobs/not-a-uuid/versions', { token }), 400);
  });
});

describe('skip', () => {
  it('count: the next n occurrences are recorded skipped (requested), not delivered; then delivery goes on', async () => {
    const path = '/skip-count';
    const job = await createJob(path);
    await sink.waitFor((r) => r.some((x) => x.path === path), 20_000, 'a first callback');
    const skip = await call(api, 'POST', `/v1/jobs/${job.id}/skip`, { token, body: { count: 2 } });
    expect(skip.status, JSON.stringify(skip.body)).toBe(200);
    const skipUntil = Date.parse(skip.body.skipUntil);
    expect(skipUntil).toBeGreaterThan(Date.now());
    expect(skipUntil - Date.now()).toBeLessThanOrEqual(2_001);
    expect(skip.body.version).toBe(job.version);

    await sink.waitFor(() => scheduledForAt(path).some((t) => t > skipUntil), 20_000, 'a callback after the skip');
    const runs = await eventually(async () => {
      const all = await runsOf(job.id);
      const requested = all.filter((r) => r.status === 'skipped' && r.skipReason === 'requested');
      return requested.length === 2 ? all : undefined;
    });
    const requested = runs.filter((r) => r.skipReason === 'requested').map((r) => Date.parse(r.scheduledFor));
    for (const t of requested) expect(t).toBeLessThan(skipUntil);
    expect(requested[0]! - requested[1]!).toBe(1_000);
    // Never delivered: no callback names a skipped instant, and none at all between the two.
    const delivered = scheduledForAt(path);
    for (const t of requested) expect(delivered).not.toContain(t);
    expect(delivered.filter((t) => t >= Math.min(...requested) && t < skipUntil)).toEqual([]);
    for (const run of runs.filter((r) => r.skipReason === 'requested')) expect(run.attempts).toBe(0);
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
  });

  it('until: every occurrence before the instant is skipped; a new skip replaces it, count 0 ends it', async () => {
    const path = '/skip-until';
    const job = await createJob(path);
    const until = new Date(Date.now() + 2_500).toISOString();
    const skip = await call(api, 'POST', `/v1/jobs/${job.id}/skip`, { token, body: { until } });
    expect(skip.body.skipUntil).toBe(until);
    await sink.waitFor((r) => r.some((x) => x.path === path), 20_000, 'a callback after until');
    expect(Math.min(...scheduledForAt(path))).toBeGreaterThanOrEqual(Date.parse(until));
    const runs = await runsOf(job.id);
    const skipped = runs.filter((r) => r.skipReason === 'requested');
    expect(skipped.length).toBeGreaterThanOrEqual(1);
    for (const run of skipped) expect(Date.parse(run.scheduledFor)).toBeLessThan(Date.parse(until));
    expect((await call(api, 'GET', `/v1/jobs/${job.id}`, { token })).body.skipUntil).toBeNull();

    const far = new Date(Date.now() + 3_600_000).toISOString();
    expect((await call(api, 'POST', `/v1/jobs/${job.id}/skip`, { token, body: { until: far } })).body.skipUntil).toBe(
      far,
    );
    const ended = await call(api, 'POST', `/v1/jobs/${job.id}/skip`, { token, body: { count: 0 } });
    expect(ended.body.skipUntil).toBeNull();
    expect((await versionsOf(job.id)).items.map((v: Json) => v.change)).toEqual(['skip', 'skip', 'skip', 'create']);
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
  });

  it('refuses bad input with problem+json naming the field, and changes nothing', async () => {
    const job = await createJob('/skip-bad', { schedule: { cron: '0 0 1 1 *' } });
    const skip = (body: unknown) => call(api, 'POST', `/v1/jobs/${job.id}/skip`, { token, body });
    expectProblem(await skip({}), 400, 'count');
    expectProblem(await skip({ count: 1, until: new Date(Date.now() + 60_000).toISOString() }), 400, 'until');
    expectProblem(await skip({ count: -1 }), 400, 'count');
    expectProblem(await skip({ count: 1001 }), 400, 'count');
    expectProblem(await skip({ count: 'two' }), 400, 'count');
    expectProblem(await skip({ until: 'tomorrow' }), 400, 'until');
    expectProblem(await skip({ until: new Date(Date.now() - 1_000).toISOString() }), 400, 'until');
    expectProblem(await skip({ count: 1, extra: true }), 400);
    const completed = await createJob('/skip-completed', {
      schedule: { cron: '0 0 1 1 *' },
      endAt: new Date(Date.now() + 60_000).toISOString(),
    });
    expectProblem(await call(api, 'POST', `/v1/jobs/${completed.id}/skip`, { token, body: { count: 1 } }), 409);
    const after = await call(api, 'GET', `/v1/jobs/${job.id}`, { token });
    expect(after.body).toMatchObject({ version: 1, skipUntil: null });
    expect((await versionsOf(job.id)).items.map((v: Json) => v.change)).toEqual(['create']);
  });

  it("answers 404 for another service's job, and skips nothing of it", async () => {
    const job = await createJob('/skip-tenant', { schedule: { cron: '0 0 1 1 *' } });
    expectProblem(await call(api, 'POST', `/v1/jobs/${job.id}/skip`, { token: otherToken, body: { count: 1 } }), 404);
    expectProblem(
      await call(api, 'POST', `/v1/jobs/${job.id}/pause`, {
        token: otherToken,
        body: { until: new Date(Date.now() + 60_000).toISOString() },
      }),
      404,
    );
    expect((await call(api, 'GET', `/v1/jobs/${job.id}`, { token })).body).toMatchObject({
      state: 'active',
      skipUntil: null,
      pausedUntil: null,
    });
  });
});

describe('pause until', () => {
  it('resumes by itself at until, the worker replaced while paused, delivering the occurrence at until', async () => {
    const path = '/pause-until';
    const job = await createJob(path);
    await sink.waitFor((r) => r.some((x) => x.path === path), 20_000, 'a first callback');
    // An occurrence instant (every 1 s from creation), a few seconds ahead.
    const anchor = Date.parse(job.createdAt);
    const until = anchor + Math.ceil((Date.now() + 4_000 - anchor) / 1_000) * 1_000;
    const paused = await call(api, 'POST', `/v1/jobs/${job.id}/pause`, {
      token,
      body: { until: new Date(until).toISOString() },
    });
    expect(paused.status, JSON.stringify(paused.body)).toBe(200);
    expect(paused.body).toMatchObject({ state: 'paused', pausedUntil: new Date(until).toISOString(), version: 2 });
    const pausedAt = Date.now();

    // Every worker goes; the pause's end is kept in Postgres, not in a process.
    expect(await worker.stop()).toBe(0);
    await eventually(async () => (Date.now() > until + 500 ? true : undefined), 20_000, 'until to pass');
    expect((await call(api, 'GET', `/v1/jobs/${job.id}`, { token })).body.state).toBe('paused');
    worker = await startWorker(env);

    const resumed = await eventually(async () => {
      const body = (await call(api, 'GET', `/v1/jobs/${job.id}`, { token })).body;
      return body.state === 'active' ? body : undefined;
    });
    expect(resumed).toMatchObject({ version: 3, pausedUntil: null });
    await sink.waitFor(() => scheduledForAt(path).includes(until), 20_000, 'the occurrence at until');
    // Nothing was delivered for an instant inside the pause.
    expect(scheduledForAt(path).filter((t) => t > pausedAt && t < until)).toEqual([]);
    // From until on, every instant has its run: delivered, or (the worker was away) recorded missed.
    const resumedAt = Date.parse(resumed.updatedAt);
    await eventually(
      async () => {
        const runs = await runsOf(job.id);
        const after = runs.map((r) => Date.parse(r.scheduledFor)).filter((t) => t >= until);
        const latest = Math.max(...after);
        if (latest < resumedAt + 2_000) return undefined;
        for (let t = until; t <= latest; t += 1_000) if (!after.includes(t)) return undefined;
        return true;
      },
      20_000,
      'a run for every instant from until on',
    );
    const changes = (await versionsOf(job.id)).items;
    expect(changes.slice(0, 2).map((v: Json) => [v.change, v.version, v.actor])).toEqual([
      ['resume', 3, { kind: 'key', id: keyId }],
      ['pause', 2, { kind: 'key', id: keyId }],
    ]);
    expect(changes[1].definition.pausedUntil).toBe(new Date(until).toISOString());
    await call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token });
  }, 60_000);

  it('a resume or another pause before until replaces it; bad until is refused with the field named', async () => {
    const job = await createJob('/pause-replace', { schedule: { cron: '0 0 1 1 *' } });
    const pause = (body?: unknown) =>
      call(api, 'POST', `/v1/jobs/${job.id}/pause`, { token, ...(body === undefined ? {} : { body }) });
    expectProblem(await pause({ until: new Date(Date.now() - 1_000).toISOString() }), 400, 'until');
    expectProblem(await pause({ until: 'soon' }), 400, 'until');
    expectProblem(await pause({ until: new Date(Date.now() + 60_000).toISOString(), extra: 1 }), 400);
    expect((await call(api, 'GET', `/v1/jobs/${job.id}`, { token })).body).toMatchObject({
      state: 'active',
      version: 1,
    });

    const until = new Date(Date.now() + 3_600_000).toISOString();
    expect((await pause({ until })).body).toMatchObject({ state: 'paused', pausedUntil: until, version: 2 });
    expect((await pause({ until })).body.version).toBe(2);
    // A pause without until makes it open-ended; a resume ends it.
    expect((await pause()).body).toMatchObject({ state: 'paused', pausedUntil: null, version: 3 });
    expect((await pause({ until })).body).toMatchObject({ pausedUntil: until, version: 4 });
    const resumed = await call(api, 'POST', `/v1/jobs/${job.id}/resume`, { token });
    expect(resumed.body).toMatchObject({ state: 'active', pausedUntil: null, version: 5 });
    expect((await versionsOf(job.id)).items.map((v: Json) => v.change)).toEqual([
      'resume',
      'pause',
      'pause',
      'pause',
      'create',
    ]);
  });
});
