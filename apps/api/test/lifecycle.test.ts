/**
 * A job's life through the REST API: PATCH with If-Match, pause and resume, run now, replay,
 * previews and list filters — each checked against Postgres and against what BullMQ holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { uuidv7 } from '@tickwork/core';
import { buildServer } from '../src/build.ts';
import { startTestApi, testServerConfig, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;
let serviceId: string;
let queue: Queue;
const auth = (extra: Record<string, string> = {}) => ({ authorization: `Bearer ${key}`, ...extra });

beforeAll(async () => {
  api = await startTestApi();
  const service = await api.newService('lifecycle');
  key = service.apiKey;
  serviceId = service.id;
  queue = new Queue('fire', {
    connection: new Redis(api.redisUrl, { maxRetriesPerRequest: null }),
    prefix: api.prefix,
  });
});
afterAll(async () => {
  await queue?.close();
  await api?.close();
});

const inject = (
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: unknown,
  headers: Record<string, string> = {},
) =>
  api.app.inject({
    method,
    url,
    headers: auth(headers),
    ...(payload === undefined ? {} : { payload: payload as object }),
  });

async function create(name: string, extra: Record<string, unknown> = {}) {
  const response = await inject('POST', '/v1/jobs', {
    name,
    schedule: { every: '1h' },
    target: { url: 'https://example.com/hook', headers: { 'x-a': '1' }, body: { v: 1 } },
    ...extra,
  });
  expect(response.statusCode).toBe(201);
  return response.json();
}

describe('PATCH /v1/jobs/{id}', () => {
  it('merges the change, bumps the version, moves the scheduler to the new id and answers the new ETag', async () => {
    const job = await create('patch-1', { labels: { team: 'a', env: 'prod' } });
    const response = await inject(
      'PATCH',
      `/v1/jobs/${job.id}`,
      {
        schedule: { cron: '0 9 * * 1-5', timezone: 'Europe/Berlin' },
        target: { headers: { 'x-a': null, 'x-b': '2' } },
        labels: { env: null },
        retry: { maxAttempts: 5 },
      },
      { 'if-match': 'W/"1"' },
    );
    expect(response.statusCode).toBe(200);
    expect(response.headers.etag).toBe('W/"2"');
    expect(response.json()).toMatchObject({
      version: 2,
      schedule: { cron: '0 9 * * 1-5', timezone: 'Europe/Berlin' },
      target: { url: 'https://example.com/hook', headers: { 'x-b': '2' }, body: { v: 1 } },
      labels: { team: 'a' },
      retry: { maxAttempts: 5, backoff: { type: 'exponential' } },
    });
    expect(await queue.getJobScheduler(`job:${job.id}:v1`)).toBeFalsy();
    const scheduler = await queue.getJobScheduler(`job:${job.id}:v2`);
    expect(scheduler).toMatchObject({ pattern: '0 9 * * 1-5', tz: 'Europe/Berlin' });
    expect(scheduler?.template?.data).toEqual({ jobId: job.id, version: 2 });
    const got = await inject('GET', `/v1/jobs/${job.id}`);
    expect(got.json().version).toBe(2);
  });

  it('answers 412 to a stale If-Match and changes nothing; accepts the strong form', async () => {
    const job = await create('patch-412');
    expect(
      (await inject('PATCH', `/v1/jobs/${job.id}`, { description: 'one' }, { 'if-match': '"1"' })).statusCode,
    ).toBe(200);
    const stale = await inject('PATCH', `/v1/jobs/${job.id}`, { description: 'two' }, { 'if-match': 'W/"1"' });
    expect(stale.statusCode).toBe(412);
    expect(stale.headers['content-type']).toContain('application/problem+json');
    expect(stale.json().code).toBe('precondition_failed');
    const got = (await inject('GET', `/v1/jobs/${job.id}`)).json();
    expect(got).toMatchObject({ version: 2, description: 'one' });
  });

  it('lets exactly one of two racing PATCHes with the same If-Match through', async () => {
    const job = await create('patch-race');
    const results = await Promise.all(
      ['a', 'b', 'c', 'd'].map((d) =>
        inject('PATCH', `/v1/jobs/${job.id}`, { description: d }, { 'if-match': 'W/"1"' }),
      ),
    );
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 412, 412, 412]);
    const schedulers = await queue.getJobSchedulers(0, -1);
    expect(schedulers.filter((s) => s.key.startsWith(`job:${job.id}:`)).map((s) => s.key)).toEqual([
      `job:${job.id}:v2`,
    ]);
  });

  it('refuses an invalid result with 400 naming the field, and changes nothing', async () => {
    const job = await create('patch-bad');
    for (const [payload, field] of [
      [{ schedule: { cron: '61 * * * *' } }, 'schedule.cron'],
      [{ schedule: { every: '1m', cron: '* * * * *' } }, 'schedule'],
      [{ target: { url: 'ftp://x' } }, 'target.url'],
      [{ name: null }, 'name'],
      [{ colour: 'red' }, 'colour'],
      [{ endAt: '2020-01-01T00:00:00Z' }, 'endAt'],
    ] as const) {
      const response = await inject('PATCH', `/v1/jobs/${job.id}`, payload);
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    expect((await inject('GET', `/v1/jobs/${job.id}`)).json().version).toBe(1);
    expect(await queue.getJobScheduler(`job:${job.id}:v1`)).toBeTruthy();
  });

  it('answers 409 for a taken name, 404 for an unknown job, and takes application/merge-patch+json', async () => {
    await create('patch-taken');
    const job = await create('patch-rename');
    expect((await inject('PATCH', `/v1/jobs/${job.id}`, { name: 'patch-taken' })).statusCode).toBe(409);
    expect(await queue.getJobScheduler(`job:${job.id}:v1`)).toBeTruthy();
    expect((await inject('PATCH', `/v1/jobs/${uuidv7()}`, { description: 'x' })).statusCode).toBe(404);
    const merge = await api.app.inject({
      method: 'PATCH',
      url: `/v1/jobs/${job.id}`,
      headers: auth({ 'content-type': 'application/merge-patch+json' }),
      payload: JSON.stringify({ description: 'merged' }),
    });
    expect(merge.statusCode).toBe(200);
    expect(merge.json().description).toBe('merged');
  });

  it('leaves an unchanged job at its version', async () => {
    const job = await create('patch-noop');
    const response = await inject('PATCH', `/v1/jobs/${job.id}`, { jitterMs: 0 });
    expect(response.statusCode).toBe(200);
    expect(response.json().version).toBe(1);
  });

  it('makes a completed job active again when its new definition fires again', async () => {
    const job = await create('patch-revive', { maxRuns: 1 });
    await api.db.db
      .updateTable('jobs')
      .set({ state: 'completed', run_count: 1, next_run_at: null })
      .where('id', '=', job.id)
      .execute();
    const revived = await inject('PATCH', `/v1/jobs/${job.id}`, { maxRuns: 5 });
    expect(revived.json()).toMatchObject({ state: 'active', version: 2, runCount: 1 });
    expect(revived.json().nextRunAt).not.toBeNull();
    expect(await queue.getJobScheduler(`job:${job.id}:v2`)).toBeTruthy();
  });

  it('completes an active job whose new window holds no more occurrences', async () => {
    const job = await create('patch-ended', { schedule: { every: '1h' } });
    const soon = new Date(Date.now() + 60_000).toISOString();
    const response = await inject('PATCH', `/v1/jobs/${job.id}`, { endAt: soon });
    expect(response.json()).toMatchObject({ state: 'completed', nextRunAt: null, version: 2 });
    expect((await queue.getJobSchedulers(0, -1)).some((s) => s.key.startsWith(`job:${job.id}:`))).toBe(false);
  });

  it('creates a job whose window holds no occurrence as completed', async () => {
    const job = await create('born-done', {
      schedule: { every: '1h' },
      endAt: new Date(Date.now() + 60_000).toISOString(),
    });
    expect(job).toMatchObject({ state: 'completed', nextRunAt: null });
    expect(await queue.getJobScheduler(`job:${job.id}:v1`)).toBeFalsy();
  });

  it('moves a one-shot to its new time', async () => {
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const later = new Date(Date.now() + 7_200_000).toISOString();
    const job = await create('patch-once', { schedule: { at } });
    const response = await inject('PATCH', `/v1/jobs/${job.id}`, { schedule: { at: later } });
    expect(response.json()).toMatchObject({ nextRunAt: later, version: 2 });
    expect(await queue.getJob(`once:${job.id}:v1`)).toBeFalsy();
    expect(await (await queue.getJob(`once:${job.id}:v2`))?.isDelayed()).toBe(true);
  });
});

describe('pause and resume', () => {
  it('pauses idempotently, removing the scheduler; resumes idempotently from now on with the phase kept', async () => {
    const job = await create('pausing', { schedule: { every: '1m' } });
    const first = await inject('POST', `/v1/jobs/${job.id}/pause`);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ state: 'paused', version: 2, nextRunAt: null });
    const again = await inject('POST', `/v1/jobs/${job.id}/pause`);
    expect(again.json()).toMatchObject({ state: 'paused', version: 2 });
    expect(await queue.getJobScheduler(`job:${job.id}:v1`)).toBeFalsy();
    expect((await queue.getJobSchedulers(0, -1)).some((s) => s.key.startsWith(`job:${job.id}:`))).toBe(false);

    const resumed = await inject('POST', `/v1/jobs/${job.id}/resume`);
    expect(resumed.json()).toMatchObject({ state: 'active', version: 3 });
    const next = Date.parse(resumed.json().nextRunAt);
    expect(next).toBeGreaterThan(Date.now());
    expect((next - Date.parse(job.createdAt)) % 60_000).toBe(0);
    expect((await inject('POST', `/v1/jobs/${job.id}/resume`)).json().version).toBe(3);
    const scheduler = await queue.getJobScheduler(`job:${job.id}:v3`);
    expect(scheduler?.next).toBe(next);
  });

  it('creates a job paused without a scheduler, and refuses to pause or resume a completed one', async () => {
    const job = await create('born-paused', { paused: true });
    expect(job).toMatchObject({ state: 'paused', nextRunAt: null });
    expect(await queue.getJobScheduler(`job:${job.id}:v1`)).toBeFalsy();
    await api.db.db.updateTable('jobs').set({ state: 'completed' }).where('id', '=', job.id).execute();
    expect((await inject('POST', `/v1/jobs/${job.id}/pause`)).statusCode).toBe(409);
    expect((await inject('POST', `/v1/jobs/${job.id}/resume`)).statusCode).toBe(409);
  });
});

describe('run now and replay', () => {
  it('records a manual run, answers 202 with it, and queues a plain job without touching the schedule', async () => {
    const job = await create('trigger-me', { schedule: { every: '1m' } });
    const before = await queue.getJobScheduler(`job:${job.id}:v1`);
    const response = await inject('POST', `/v1/jobs/${job.id}/trigger`);
    expect(response.statusCode).toBe(202);
    const run = response.json();
    expect(run).toMatchObject({ jobId: job.id, trigger: 'manual', status: 'running', attempts: 0 });
    expect(response.headers.location).toBe(`/v1/runs/${run.id}`);
    const queued = await queue.getJob(`manual:${job.id}:${run.id}`);
    expect(queued?.data).toEqual({ jobId: job.id, version: 1, runId: run.id });
    expect((await queue.getJobScheduler(`job:${job.id}:v1`))?.next).toBe(before?.next);
    // Two at once are two runs.
    const [a, b] = await Promise.all([
      inject('POST', `/v1/jobs/${job.id}/trigger`),
      inject('POST', `/v1/jobs/${job.id}/trigger`),
    ]);
    expect(a.json().id).not.toBe(b.json().id);
    expect((await inject('GET', `/v1/runs/${run.id}`)).json().trigger).toBe('manual');
  });

  it('replays a dead or failed run as a new run, and refuses others', async () => {
    const job = await create('replay-me');
    const dead = uuidv7();
    await api.db.db
      .insertInto('runs')
      .values({
        id: dead,
        job_id: job.id,
        service_id: serviceId,
        job_version: 1,
        scheduled_for: new Date(Date.now() - 60_000),
        trigger: 'schedule',
        status: 'dead',
        attempts: 3,
        http_status: 503,
      })
      .execute();
    const listed = await inject('GET', '/v1/runs?status=dead');
    expect(listed.json().items.map((r: { id: string }) => r.id)).toContain(dead);
    const response = await inject('POST', `/v1/runs/${dead}/replay`);
    expect(response.statusCode).toBe(202);
    const replay = response.json();
    expect(replay).toMatchObject({ trigger: 'replay', replayOf: dead, status: 'running', jobId: job.id });
    expect(replay.id).not.toBe(dead);
    expect((await queue.getJob(`replay:${job.id}:${replay.id}`))?.data).toEqual({
      jobId: job.id,
      version: 1,
      runId: replay.id,
    });
    expect((await inject('POST', `/v1/runs/${replay.id}/replay`)).statusCode).toBe(409);
    expect((await inject('POST', `/v1/runs/${uuidv7()}/replay`)).statusCode).toBe(404);
  });

  it('pages the dead-letter list by cursor', async () => {
    const other = await api.newService('dead-pager');
    const headers = { authorization: `Bearer ${other.apiKey}` };
    const job = (
      await api.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers,
        payload: { name: 'd', schedule: { every: '1h' }, target: { url: 'https://example.com' } },
      })
    ).json();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = uuidv7(Date.now() + i);
      ids.push(id);
      await api.db.db
        .insertInto('runs')
        .values({
          id,
          job_id: job.id,
          service_id: other.id,
          job_version: 1,
          scheduled_for: new Date(Date.UTC(2026, 0, 1, 0, i)),
          trigger: 'schedule',
          status: i === 2 ? 'succeeded' : 'dead',
        })
        .execute();
    }
    const first = (await api.app.inject({ method: 'GET', url: '/v1/runs?status=dead&limit=2', headers })).json();
    const second = (
      await api.app.inject({ method: 'GET', url: `/v1/runs?status=dead&limit=2&cursor=${first.nextCursor}`, headers })
    ).json();
    expect([...first.items, ...second.items].map((r: { id: string }) => r.id)).toEqual([
      ids[4],
      ids[3],
      ids[1],
      ids[0],
    ]);
    expect(second.nextCursor).toBeNull();
  });
});

describe('previews', () => {
  it('lists the next runs of a job, within maxRuns, and none when paused', async () => {
    const job = await create('preview-job', { schedule: { cron: '0 * * * *' }, maxRuns: 3 });
    const response = await inject('GET', `/v1/jobs/${job.id}/next-runs?count=10`);
    const runs: string[] = response.json().nextRuns;
    expect(runs).toHaveLength(3);
    for (const run of runs) expect(new Date(run).getUTCMinutes()).toBe(0);
    expect(runs[0]).toBe(job.nextRunAt);
    expect((await inject('GET', `/v1/jobs/${job.id}/next-runs?count=101`)).statusCode).toBe(400);
    await inject('POST', `/v1/jobs/${job.id}/pause`);
    expect((await inject('GET', `/v1/jobs/${job.id}/next-runs`)).json()).toEqual({ nextRuns: [] });
  });

  it('previews a schedule across the DST changes of Berlin and New York', async () => {
    const berlin = await inject('POST', '/v1/schedules/preview', {
      schedule: { cron: '30 2 * * *', timezone: 'Europe/Berlin' },
      startAt: '2027-03-26T00:00:00Z',
      count: 4,
    });
    expect(berlin.statusCode).toBe(200);
    // 28 March 2027: 02:30 does not exist in Berlin; that day has no run.
    expect(berlin.json().nextRuns).toEqual([
      '2027-03-26T01:30:00.000Z',
      '2027-03-27T01:30:00.000Z',
      '2027-03-29T00:30:00.000Z',
      '2027-03-30T00:30:00.000Z',
    ]);
    const newYork = await inject('POST', '/v1/schedules/preview', {
      schedule: { cron: '30 1 * * *', timezone: 'America/New_York' },
      startAt: '2027-11-06T12:00:00Z',
      endAt: '2027-11-08T12:00:00Z',
      count: 10,
    });
    // 7 November 2027: 01:30 happens twice in New York and fires once; the window ends the list.
    expect(newYork.json().nextRuns).toEqual(['2027-11-07T05:30:00.000Z', '2027-11-08T06:30:00.000Z']);
  });

  it('phases an interval preview from startAt and refuses a bad schedule with the reason', async () => {
    const start = new Date(Date.now() + 3_600_000);
    const every = await inject('POST', '/v1/schedules/preview', {
      schedule: { every: '15m' },
      startAt: start.toISOString(),
      count: 3,
    });
    expect(every.json().nextRuns).toEqual([0, 1, 2].map((k) => new Date(start.getTime() + k * 900_000).toISOString()));
    for (const [payload, field] of [
      [{ schedule: { cron: '0 25 * * *' } }, 'schedule.cron'],
      [{ schedule: { cron: '0 9 * * *', timezone: 'Nowhere/City' } }, 'schedule.timezone'],
      [{ schedule: { every: '1s' }, startAt: '2027-01-02T00:00:00Z', endAt: '2027-01-01T00:00:00Z' }, 'endAt'],
      [{ schedule: { every: '5m' }, count: 101 }, 'count'],
    ] as const) {
      const response = await inject('POST', '/v1/schedules/preview', payload);
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().errors.map((e: { field: string }) => e.field)).toContain(field);
    }
  });
});

describe('list filters', () => {
  it('filters by state, labels (all required) and name prefix, keyset-paged', async () => {
    const other = await api.newService('filters');
    const headers = { authorization: `Bearer ${other.apiKey}` };
    const make = async (name: string, labels: Record<string, string>, paused = false) =>
      (
        await api.app.inject({
          method: 'POST',
          url: '/v1/jobs',
          headers,
          payload: { name, labels, paused, schedule: { every: '1h' }, target: { url: 'https://example.com' } },
        })
      ).json().id as string;
    const a = await make('billing-daily', { team: 'billing', env: 'prod' });
    const b = await make('billing-hourly', { team: 'billing', env: 'dev' }, true);
    const c = await make('search_index', { team: 'search', env: 'prod' });
    const d = await make('searchXindex', { team: 'search', env: 'prod' });
    const list = async (query: string) =>
      (await api.app.inject({ method: 'GET', url: `/v1/jobs?${query}`, headers }))
        .json()
        .items.map((j: { id: string }) => j.id);
    expect(await list('state=paused')).toEqual([b]);
    expect(await list('label=team:billing')).toEqual([b, a]);
    expect(await list('label=team:billing&label=env:prod')).toEqual([a]);
    expect(await list('name=billing-')).toEqual([b, a]);
    // `_` and `%` in a prefix are literal characters, not LIKE wildcards.
    expect(await list('name=search_')).toEqual([c]);
    expect(await list('state=active&label=env:prod&name=search')).toEqual([d, c]);
    const page = (await api.app.inject({ method: 'GET', url: '/v1/jobs?label=env:prod&limit=1', headers })).json();
    expect(page.items.map((j: { id: string }) => j.id)).toEqual([d]);
    const next = (
      await api.app.inject({ method: 'GET', url: `/v1/jobs?label=env:prod&limit=1&cursor=${page.nextCursor}`, headers })
    ).json();
    expect(next.items.map((j: { id: string }) => j.id)).toEqual([c]);
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs?label=nocolon', headers })).statusCode).toBe(400);
  });
});

describe('when Redis is away', () => {
  it('answers 503 to PATCH, resume and run now, and changes nothing; pause still takes effect', async () => {
    const job = await create('redis-away', { schedule: { every: '1m' } });
    const paused = await create('redis-away-paused', { paused: true });
    const { createServer } = await import('node:net');
    // A port nothing listens on: every Redis call fails at once.
    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const away = await buildServer(
      testServerConfig(api.db.url, `redis://127.0.0.1:${closed}`, api.prefix, { databasePoolMax: 2 }),
    );
    try {
      await away.ready();
      const call = (method: 'POST' | 'PATCH', url: string, payload?: object) =>
        away.inject({ method, url, headers: auth(), ...(payload ? { payload } : {}) });
      const patch = await call('PATCH', `/v1/jobs/${job.id}`, { description: 'x' });
      expect(patch.statusCode).toBe(503);
      expect(patch.headers['content-type']).toContain('application/problem+json');
      expect((await call('POST', `/v1/jobs/${paused.id}/resume`)).statusCode).toBe(503);
      expect((await call('POST', `/v1/jobs/${job.id}/trigger`)).statusCode).toBe(503);
      expect((await inject('GET', `/v1/jobs/${job.id}`)).json()).toMatchObject({ version: 1, description: null });
      expect((await inject('GET', `/v1/jobs/${paused.id}`)).json()).toMatchObject({ version: 1, state: 'paused' });
      expect((await inject('GET', `/v1/jobs/${job.id}/runs`)).json().items).toEqual([]);
      expect(await queue.getJobScheduler(`job:${job.id}:v1`)).toBeTruthy();
      // Postgres alone stops delivery of a paused job, so pausing does not wait for Redis.
      expect((await call('POST', `/v1/jobs/${job.id}/pause`)).json()).toMatchObject({ state: 'paused', version: 2 });
    } finally {
      await away.close();
    }
    // Each refusal waits out the api's 2 s Redis budget.
  }, 30_000);
});

describe('OpenAPI', () => {
  it('lists every route of the issue and describes every field of a job, a run and the bodies', async () => {
    const doc = (await api.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/jobs/{id}/pause',
        '/v1/jobs/{id}/resume',
        '/v1/jobs/{id}/trigger',
        '/v1/jobs/{id}/next-runs',
        '/v1/schedules/preview',
        '/v1/runs/{id}/replay',
      ]),
    );
    expect(doc.paths['/v1/jobs/{id}'].patch).toBeDefined();
    const undescribed: string[] = [];
    const walk = (schema: any, path: string) => {
      if (!schema || typeof schema !== 'object') return;
      for (const [name, property] of Object.entries<any>(schema.properties ?? {})) {
        const described = property.description ?? property.anyOf?.find((p: any) => p.description)?.description;
        if (!described && !property.properties && !property.anyOf?.some((p: any) => p.properties))
          undescribed.push(`${path}.${name}`);
        walk(property, `${path}.${name}`);
        for (const option of property.anyOf ?? []) walk(option, `${path}.${name}`);
      }
    };
    const schemas = {
      job: doc.paths['/v1/jobs/{id}'].get.responses['200'].content['application/json'].schema,
      run: doc.paths['/v1/runs/{id}'].get.responses['200'].content['application/json'].schema,
      create: doc.paths['/v1/jobs'].post.requestBody.content['application/json'].schema,
      patch: doc.paths['/v1/jobs/{id}'].patch.requestBody.content['application/json'].schema,
      preview: doc.paths['/v1/schedules/preview'].post.requestBody.content['application/json'].schema,
    };
    for (const [name, schema] of Object.entries(schemas)) walk(schema, name);
    expect(undescribed).toEqual([]);
  });
});
