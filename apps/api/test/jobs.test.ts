import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startTestApi, ADMIN_TOKEN, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;
let queue: Queue;
const auth = () => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  api = await startTestApi();
  key = (await api.newService('jobs-test')).apiKey;
  queue = new Queue('fire', {
    connection: new Redis(api.redisUrl, { maxRetriesPerRequest: null }),
    prefix: api.prefix,
  });
});
afterAll(async () => {
  await queue?.close();
  await api?.close();
});

const everySecond = (name: string) => ({
  name,
  schedule: { every: '1s' },
  target: { url: 'http://127.0.0.1:9/hook', method: 'POST', body: { hello: 'world' } },
  labels: { team: 'billing' },
});

describe('POST /v1/jobs', () => {
  it('creates a job, answers 201 with Location and ETag, and registers a scheduler with ids only', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth(),
      payload: everySecond('create-1'),
    });
    expect(response.statusCode).toBe(201);
    const job = response.json();
    expect(response.headers.location).toBe(`/v1/jobs/${job.id}`);
    expect(response.headers.etag).toBe('W/"1"');
    expect(job).toMatchObject({
      name: 'create-1',
      state: 'active',
      schedule: { every: '1s' },
      target: { url: 'http://127.0.0.1:9/hook', method: 'POST', headers: {}, timeoutMs: 10000 },
      labels: { team: 'billing' },
      version: 1,
      lastRunAt: null,
      lastRunStatus: null,
      runCount: 0,
    });
    expect(Date.parse(job.nextRunAt)).toBeGreaterThan(Date.now() - 1000);
    const scheduler = await queue.getJobScheduler(`job:${job.id}:v1`);
    expect(scheduler?.every).toBe(1000);
    expect(scheduler?.template?.data).toEqual({ jobId: job.id, version: 1 });
  });

  it('registers a one-shot as a delayed job', async () => {
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth(),
      payload: { name: 'once-1', schedule: { at }, target: { url: 'https://example.com/x' } },
    });
    expect(response.statusCode).toBe(201);
    const job = response.json();
    expect(job.nextRunAt).toBe(at);
    const delayed = await queue.getJob(`once:${job.id}:v1`);
    expect(delayed?.data).toEqual({ jobId: job.id, version: 1 });
    expect(await delayed?.isDelayed()).toBe(true);
  });

  it('answers 409 for a second job with the same name', async () => {
    await api.app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: everySecond('dup') });
    const again = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth(),
      payload: everySecond('dup'),
    });
    expect(again.statusCode).toBe(409);
    expect(again.headers['content-type']).toContain('application/problem+json');
  });

  const bad: Array<[string, Record<string, unknown>, string]> = [
    ['a bad cron', { schedule: { cron: '61 * * * *' } }, 'schedule.cron'],
    ['an unknown time zone', { schedule: { cron: '0 9 * * *', timezone: 'Mars/Base' } }, 'schedule.timezone'],
    ['an interval under 1 s', { schedule: { every: '500ms' } }, 'schedule.every'],
    ['an everyMs under 1 s', { schedule: { everyMs: 10 } }, 'schedule.everyMs'],
    ['an at in the past', { schedule: { at: '2020-01-01T00:00:00Z' } }, 'schedule.at'],
    ['a non-http URL', { target: { url: 'ftp://example.com/x' } }, 'target.url'],
    ['an unknown field', { colour: 'blue' }, 'colour'],
    ['an unknown target field', { target: { url: 'https://example.com', verb: 'POST' } }, 'target.verb'],
    ['a missing name', { name: undefined }, 'name'],
    ['two schedules', { schedule: { every: '1m', cron: '* * * * *' } }, 'schedule'],
    ['a string for a number', { schedule: { everyMs: '5000' } }, 'schedule.everyMs'],
    ['an empty schedule', { schedule: {} }, 'schedule'],
    ['a cron that is not a string', { schedule: { cron: 5 } }, 'schedule.cron'],
    ['a time zone without a cron', { schedule: { every: '1m', timezone: 'UTC' } }, 'schedule.timezone'],
  ];
  it.each(bad)(
    'refuses %s with 400 problem+json naming the field, and changes nothing',
    async (_what, change, field) => {
      const before = await api.db.db
        .selectFrom('jobs')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      const payload = { ...everySecond(`bad-${field}`), ...change };
      const response = await api.app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload });
      expect(response.statusCode).toBe(400);
      expect(response.headers['content-type']).toContain('application/problem+json');
      const problem = response.json();
      expect(problem).toMatchObject({
        status: 400,
        code: 'validation_failed',
        title: expect.any(String),
        type: expect.any(String),
      });
      expect(problem.errors.map((e: { field: string }) => e.field)).toContain(field);
      const after = await api.db.db
        .selectFrom('jobs')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      expect(Number(after.n)).toBe(Number(before.n));
    },
  );
});

describe('schedule: exactly one form', () => {
  it.each([
    ['none', {}],
    ['two', { every: '1m', cron: '* * * * *' }],
  ])('names only the rule when the schedule has %s of the forms', async (_what, schedule) => {
    const payload = { ...everySecond('one-form'), schedule };
    const response = await api.app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload });
    expect(response.statusCode).toBe(400);
    expect(response.json().errors).toEqual([
      { field: 'schedule', message: 'must have exactly one of cron, every, everyMs, at' },
    ]);
  });

  it("names only the chosen form's faults", async () => {
    const payload = { ...everySecond('one-form'), schedule: { cron: 5, timezone: 7 } };
    const response = await api.app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload });
    expect(response.statusCode).toBe(400);
    expect(response.json().errors).toEqual([
      { field: 'schedule.cron', message: 'must be string' },
      { field: 'schedule.timezone', message: 'must be string' },
    ]);
  });
});

describe('a job read back can be written back', () => {
  /** The job's fields the served document marks read-only. */
  async function readOnlyFields(): Promise<string[]> {
    const doc = (await api.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const properties: Record<string, { readOnly?: boolean }> = doc.components.schemas.Job.properties;
    return Object.entries(properties)
      .filter(([, schema]) => schema.readOnly)
      .map(([name]) => name);
  }

  it('as a create (null meaning unset) and as a PATCH', async () => {
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth(),
      payload: { ...everySecond('round-trip'), description: null, startAt: null, endAt: null, maxRuns: null },
    });
    expect(created.statusCode, created.body).toBe(201);
    const read = (await api.app.inject({ method: 'GET', url: created.headers.location!, headers: auth() })).json();
    expect(read).toMatchObject({ description: null, startAt: null, endAt: null, maxRuns: null });
    const hidden = await readOnlyFields();
    expect(hidden).toEqual(expect.arrayContaining(['id', 'state', 'version', 'nextRunAt', 'runCount', 'createdAt']));
    const writable = Object.fromEntries(Object.entries(read).filter(([name]) => !hidden.includes(name)));

    const copy = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: auth(),
      payload: { ...writable, name: 'round-trip-copy' },
    });
    expect(copy.statusCode, copy.body).toBe(201);
    const copied = copy.json();
    expect(Object.fromEntries(Object.entries(copied).filter(([name]) => !hidden.includes(name)))).toEqual({
      ...writable,
      name: 'round-trip-copy',
    });

    const patched = await api.app.inject({
      method: 'PATCH',
      url: created.headers.location!,
      headers: { ...auth(), 'content-type': 'application/merge-patch+json' },
      payload: JSON.stringify({ ...writable, maxRuns: 5 }),
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject({ ...writable, maxRuns: 5, version: 2 });
    const unset = await api.app.inject({
      method: 'PATCH',
      url: created.headers.location!,
      headers: auth(),
      payload: { maxRuns: null },
    });
    expect(unset.json()).toMatchObject({ maxRuns: null, version: 3 });
  });
});

describe('reading and deleting', () => {
  it('pages the list by keyset cursor, newest first', async () => {
    const service = await api.newService('pager');
    const headers = { authorization: `Bearer ${service.apiKey}` };
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await api.app.inject({ method: 'POST', url: '/v1/jobs', headers, payload: everySecond(`page-${i}`) });
      ids.push(r.json().id);
    }
    const first = await api.app.inject({ method: 'GET', url: '/v1/jobs?limit=2', headers });
    expect(first.statusCode).toBe(200);
    expect(first.json().items.map((j: { id: string }) => j.id)).toEqual([ids[4], ids[3]]);
    const cursor = first.json().nextCursor;
    const second = await api.app.inject({ method: 'GET', url: `/v1/jobs?limit=2&cursor=${cursor}`, headers });
    expect(second.json().items.map((j: { id: string }) => j.id)).toEqual([ids[2], ids[1]]);
    const third = await api.app.inject({
      method: 'GET',
      url: `/v1/jobs?limit=2&cursor=${second.json().nextCursor}`,
      headers,
    });
    expect(third.json()).toMatchObject({ items: [{ id: ids[0] }], nextCursor: null });
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs?limit=101', headers })).statusCode).toBe(400);
    expect((await api.app.inject({ method: 'GET', url: '/v1/jobs?cursor=nonsense', headers })).statusCode).toBe(400);
  });

  it('gets one job and deletes it, removing its scheduler', async () => {
    const created = (
      await api.app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: everySecond('to-delete') })
    ).json();
    const got = await api.app.inject({ method: 'GET', url: `/v1/jobs/${created.id}`, headers: auth() });
    expect(got.statusCode).toBe(200);
    expect(got.json().id).toBe(created.id);
    expect(await queue.getJobScheduler(`job:${created.id}:v1`)).toBeTruthy();
    const deleted = await api.app.inject({ method: 'DELETE', url: `/v1/jobs/${created.id}`, headers: auth() });
    expect(deleted.statusCode).toBe(204);
    expect(await queue.getJobScheduler(`job:${created.id}:v1`)).toBeFalsy();
    expect((await api.app.inject({ method: 'GET', url: `/v1/jobs/${created.id}`, headers: auth() })).statusCode).toBe(
      404,
    );
    expect(
      (await api.app.inject({ method: 'DELETE', url: `/v1/jobs/${created.id}`, headers: auth() })).statusCode,
    ).toBe(404);
  });

  it("answers 404 for another service's job", async () => {
    const created = (
      await api.app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: everySecond('mine') })
    ).json();
    const other = await api.newService('other');
    const headers = { authorization: `Bearer ${other.apiKey}` };
    expect((await api.app.inject({ method: 'GET', url: `/v1/jobs/${created.id}`, headers })).statusCode).toBe(404);
    expect((await api.app.inject({ method: 'DELETE', url: `/v1/jobs/${created.id}`, headers })).statusCode).toBe(404);
    expect((await api.app.inject({ method: 'GET', url: `/v1/jobs/${created.id}/runs`, headers })).statusCode).toBe(404);
  });
});

describe('authentication', () => {
  it('answers 401 problem+json without a key or with a wrong one', async () => {
    for (const headers of [{}, { authorization: 'Bearer tw_wrong' }, { authorization: 'Basic abc' }]) {
      const response = await api.app.inject({ method: 'GET', url: '/v1/jobs', headers });
      expect(response.statusCode).toBe(401);
      expect(response.headers['content-type']).toContain('application/problem+json');
    }
  });

  it('stores only a hash of the API key', async () => {
    const service = await api.newService('hashed');
    expect(service.apiKey).toMatch(/^tw_[A-Za-z0-9]{40}$/);
    const rows = await api.db.db.selectFrom('api_keys').selectAll().where('service_id', '=', service.id).execute();
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(service.apiKey);
    const services = await api.db.db.selectFrom('services').selectAll().where('id', '=', service.id).execute();
    expect(JSON.stringify(services)).not.toContain(service.signingSecret.slice(6));
  });

  it('keeps admin routes to the admin token', async () => {
    expect(
      (await api.app.inject({ method: 'POST', url: '/v1/admin/services', payload: { name: 'x' } })).statusCode,
    ).toBe(401);
    const asService = await api.app.inject({
      method: 'POST',
      url: '/v1/admin/services',
      headers: auth(),
      payload: { name: 'x' },
    });
    expect(asService.statusCode).toBe(403);
    const ok = await api.app.inject({
      method: 'POST',
      url: '/v1/admin/services',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { name: 'admin-made' },
    });
    expect(ok.statusCode).toBe(201);
    expect(ok.json()).toMatchObject({
      name: 'admin-made',
      apiKey: expect.stringMatching(/^tw_/),
      signingSecret: expect.stringMatching(/^whsec_/),
    });
  });
});

describe('docs and health', () => {
  it('serves the OpenAPI document and the docs UI', async () => {
    const spec = await api.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(spec.statusCode).toBe(200);
    const doc = spec.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/runs', '/v1/runs/{id}']),
    );
    const { $ref } = doc.paths['/v1/jobs'].post.requestBody.content['application/json'].schema;
    const create = doc.components.schemas[$ref.replace('#/components/schemas/', '')];
    expect(Object.keys(create.properties)).toEqual(expect.arrayContaining(['name', 'schedule', 'target', 'labels']));
    const ui = await api.app.inject({ method: 'GET', url: '/docs/' });
    expect(ui.statusCode).toBe(200);
  });

  it('is live and ready when Postgres and Redis answer', async () => {
    expect((await api.app.inject({ method: 'GET', url: '/health/live' })).json()).toEqual({ status: 'ok' });
    const ready = await api.app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ok', checks: { postgres: { status: 'ok' }, redis: { status: 'ok' } } });
  });

  it('answers unknown routes with 404 problem+json', async () => {
    const response = await api.app.inject({ method: 'GET', url: '/v1/nothing-here' });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toContain('application/problem+json');
  });
});
