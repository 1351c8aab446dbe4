/**
 * Tenant isolation, generated from the route table: every /v1 route (admin aside) that names a
 * job, a run or an alert in its path is called with another service's key against a real job and run, and
 * must answer 404 and change nothing; every /v1 list must leave the other service's ids out. A
 * route added later is in the table, so it is in the matrix without an edit here; one whose path
 * names something the generator cannot fill fails the coverage test until the generator learns it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { uuidv7 } from '@tickwork/core';
import { recordOccurrence } from '@tickwork/db';
import { startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let queue: Queue;
let owner: { id: string; apiKey: string };
let stranger: { id: string; apiKey: string };
let jobId: string;
let runId: string;
let calendarId: string;
let alertId: string;

/** What each path segment before a `:param` names, and the owner's id of that kind. */
const idFor: Record<string, () => string> = {
  jobs: () => jobId,
  runs: () => runId,
  calendars: () => calendarId,
  alerts: () => alertId,
};

/** Values for body fields, so a write route reaches its ownership check rather than stopping at validation. */
const SAMPLE_BODY: Record<string, unknown> = {
  name: 'probe',
  description: 'probe',
  labels: { probe: 'yes' },
  schedule: { every: '1h' },
  target: { url: 'https://example.com/probe' },
  startAt: new Date(Date.now() + 3_600_000).toISOString(),
  maxRuns: 5,
  jitterMs: 0,
  overlap: 'allow',
  misfire: { policy: 'skip' },
  retry: { maxAttempts: 2 },
  paused: false,
  count: 5,
};

interface Route {
  method: string;
  url: string;
  schema: { body?: { $ref?: string; properties?: Record<string, unknown> } } | undefined;
}

function v1Routes(): Route[] {
  return (api.app.routeTable as readonly Route[]).filter(
    (r) => r.url.startsWith('/v1/') && !r.url.startsWith('/v1/admin'),
  );
}

/** The route's path with each `:param` filled with the owner's id, or the params it cannot fill. */
function fill(url: string): { path: string; unknown: string[] } {
  const segments = url.split('/');
  const unknown: string[] = [];
  const path = segments
    .map((segment, i) => {
      if (!segment.startsWith(':')) return segment;
      const id = idFor[segments[i - 1] ?? ''];
      if (!id) unknown.push(`${segment} after /${segments[i - 1]}`);
      return id ? id() : segment;
    })
    .join('/');
  return { path, unknown };
}

function bodyFor(route: Route): Record<string, unknown> | undefined {
  const body = route.schema?.body;
  // A named body schema is registered on the app and referenced by its $id.
  const named = body?.$ref ? (api.app.getSchema(body.$ref) as { properties?: Record<string, unknown> }) : body;
  const properties = named?.properties;
  if (!properties) return undefined;
  return Object.fromEntries(
    Object.keys(properties)
      .filter((k) => k in SAMPLE_BODY)
      .map((k) => [k, SAMPLE_BODY[k]]),
  );
}

async function snapshot() {
  const job = await api.db.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
  const runs = await api.db.db.selectFrom('runs').selectAll().where('job_id', '=', jobId).orderBy('id').execute();
  const scheduler = await queue.getJobScheduler(`job:${jobId}:v${job.version}`);
  const bullJobs = await queue.getJobs(['waiting', 'delayed', 'active', 'prioritized']);
  const calendar = await api.db.db.selectFrom('calendars').selectAll().where('id', '=', calendarId).executeTakeFirst();
  return { job, runs, calendar, scheduler: scheduler?.key ?? null, bullJobs: bullJobs.map((j) => j.id).sort() };
}

beforeAll(async () => {
  api = await startTestApi();
  queue = new Queue('fire', {
    connection: new Redis(api.redisUrl, { maxRetriesPerRequest: null }),
    prefix: api.prefix,
  });
  owner = await api.newService('owner');
  stranger = await api.newService('stranger');
  const created = await api.app.inject({
    method: 'POST',
    url: '/v1/jobs',
    headers: { authorization: `Bearer ${owner.apiKey}` },
    payload: { name: 'owned', schedule: { every: '1h' }, target: { url: 'https://example.com/owned' } },
  });
  expect(created.statusCode).toBe(201);
  jobId = created.json().id;
  const calendar = await api.app.inject({
    method: 'POST',
    url: '/v1/calendars',
    headers: { authorization: `Bearer ${owner.apiKey}` },
    payload: { name: 'owned-holidays', dates: ['2030-12-25'] },
  });
  expect(calendar.statusCode).toBe(201);
  calendarId = calendar.json().id;
  const { run } = await recordOccurrence(api.db.db, {
    id: uuidv7(),
    jobId,
    serviceId: owner.id,
    jobVersion: 1,
    scheduledFor: new Date(Date.now() - 60_000),
    trigger: 'schedule',
    status: 'running',
  });
  await api.db.db
    .updateTable('runs')
    .set({ status: 'dead', attempts: 3, finished_at: new Date() })
    .where('id', '=', run.id)
    .execute();
  runId = run.id;
  alertId = uuidv7();
  await api.db.db
    .insertInto('alerts')
    .values({ id: alertId, service_id: owner.id, job_id: jobId, scheduled_for: run.scheduled_for, reason: 'dead' })
    .execute();
});
afterAll(async () => {
  await queue?.close();
  await api?.close();
});

describe('tenant isolation over every /v1 route', () => {
  it('knows how to fill every path parameter of every /v1 route', () => {
    const routes = v1Routes();
    expect(routes.length).toBeGreaterThan(0);
    const unfillable = routes.flatMap((r) => fill(r.url).unknown.map((u) => `${r.method} ${r.url}: ${u}`));
    expect(unfillable, 'teach idFor in this test which id these parameters take').toEqual([]);
  });

  it("answers 404 to another service's key on every route that names a job or a run, and changes nothing", async () => {
    const before = await snapshot();
    const routes = v1Routes().filter((r) => r.url.includes('/:'));
    expect(routes.map((r) => `${r.method} ${r.url}`)).toEqual(
      expect.arrayContaining(['GET /v1/jobs/:id', 'DELETE /v1/jobs/:id', 'GET /v1/jobs/:id/runs', 'GET /v1/runs/:id']),
    );
    const answers: string[] = [];
    for (const route of routes) {
      const { path } = fill(route.url);
      const body = bodyFor(route);
      const response = await api.app.inject({
        method: route.method as 'GET',
        url: path,
        headers: { authorization: `Bearer ${stranger.apiKey}` },
        ...(body === undefined ? {} : { payload: body }),
      });
      answers.push(`${route.method} ${route.url} → ${response.statusCode}`);
      if (route.method !== 'HEAD') {
        expect(response.headers['content-type'], `${route.method} ${route.url}`).toContain('application/problem+json');
        expect(response.body).not.toContain('example.com/owned');
      }
    }
    expect(answers).toEqual(routes.map((r) => `${r.method} ${r.url} → 404`));
    expect(await snapshot()).toEqual(before);

    // The owner still sees and controls its own.
    const mine = await api.app.inject({
      method: 'GET',
      url: `/v1/jobs/${jobId}`,
      headers: { authorization: `Bearer ${owner.apiKey}` },
    });
    expect(mine.statusCode).toBe(200);
    const run = await api.app.inject({
      method: 'GET',
      url: `/v1/runs/${runId}`,
      headers: { authorization: `Bearer ${owner.apiKey}` },
    });
    expect(run.statusCode).toBe(200);
  });

  it("leaves the other service's jobs and runs out of every list", async () => {
    const lists = v1Routes().filter((r) => r.method === 'GET' && !r.url.includes('/:'));
    expect(lists.map((r) => r.url)).toEqual(expect.arrayContaining(['/v1/jobs', '/v1/runs']));
    for (const route of lists) {
      const theirs = await api.app.inject({
        method: 'GET',
        url: route.url,
        headers: { authorization: `Bearer ${stranger.apiKey}` },
      });
      expect(theirs.statusCode, route.url).toBe(200);
      expect(theirs.body).not.toContain(jobId);
      expect(theirs.body).not.toContain(runId);
      expect(theirs.body).not.toContain(calendarId);
      expect(theirs.body).not.toContain(alertId);
      for (const query of ['?status=dead', `?name=owned`, '?label=probe:yes', '?limit=100', '?state=open']) {
        const filtered = await api.app.inject({
          method: 'GET',
          url: route.url + query,
          headers: { authorization: `Bearer ${stranger.apiKey}` },
        });
        expect(filtered.body).not.toContain(jobId);
        expect(filtered.body).not.toContain(runId);
        expect(filtered.body).not.toContain(alertId);
      }
    }
    const ours = await api.app.inject({
      method: 'GET',
      url: '/v1/runs?status=dead',
      headers: { authorization: `Bearer ${owner.apiKey}` },
    });
    expect(ours.body).toContain(runId);
  });

  it('takes the tenant from the key only: a service id in the body or a header changes nothing', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${stranger.apiKey}`, 'x-service-id': owner.id },
      payload: {
        name: 'spoof',
        serviceId: owner.id,
        schedule: { every: '1h' },
        target: { url: 'https://example.com' },
      },
    });
    expect(response.statusCode).toBe(400);
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${stranger.apiKey}`, 'x-service-id': owner.id },
      payload: { name: 'spoof', schedule: { every: '1h' }, target: { url: 'https://example.com' } },
    });
    expect(created.statusCode).toBe(201);
    const row = await api.db.db
      .selectFrom('jobs')
      .select('service_id')
      .where('id', '=', created.json().id)
      .executeTakeFirstOrThrow();
    expect(row.service_id).toBe(stranger.id);
  });
});
