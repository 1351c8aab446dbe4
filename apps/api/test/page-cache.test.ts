/**
 * List pages served from rows serialized once per row version (`page-cache.ts`): a page read
 * again answers each row as it is now — changed behind the api's back (as the worker changes a
 * job's counters and a run's outcome), deleted, or with a skip whose instant has passed — and
 * the same bytes as the route's own serializer; a second api instance on the same database
 * answers the same. No notification is involved, so none is awaited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '@tickwork/core';
import { anotherInstance, startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let headers: Record<string, string>;
let serviceId: string;
let jobIds: string[];

const startAt = new Date(Date.now() + 30 * 86_400_000).toISOString();

async function list(path: string, app = api.app) {
  const response = await app.inject({ method: 'GET', url: path, headers });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
  return response.json() as { items: Array<Record<string, unknown>>; nextCursor: string | null };
}

beforeAll(async () => {
  api = await startTestApi();
  const service = await api.newService();
  serviceId = service.id;
  headers = { authorization: `Bearer ${service.apiKey}` };
  jobIds = [];
  for (let i = 0; i < 5; i++) {
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers,
      payload: {
        name: `page-${i}`,
        labels: { team: i % 2 === 0 ? 'even' : 'odd' },
        schedule: { every: '1h' },
        startAt,
        target: { url: 'http://127.0.0.1:9/hook', headers: { 'x-plain': 'p', authorization: 'Bearer s3cret' } },
      },
    });
    expect(created.statusCode).toBe(201);
    jobIds.push(created.json().id);
  }
});

afterAll(async () => {
  await api?.close();
});

describe('list pages from serialized rows', () => {
  it('answers each job as its own GET serializes it, newest first, and pages by cursor', async () => {
    const first = await list('/v1/jobs?limit=3');
    expect(first.items.map((j) => j.id)).toEqual([...jobIds].reverse().slice(0, 3));
    for (const item of first.items) {
      const one = await api.app.inject({ method: 'GET', url: `/v1/jobs/${item.id}`, headers });
      expect(item).toEqual(one.json());
    }
    // The secret header stays redacted in a kept row too.
    expect((first.items[0]!.target as { headers: Record<string, string> }).headers.authorization).toBe('***');
    const again = await list('/v1/jobs?limit=3');
    expect(again).toEqual(first);
    const second = await list(`/v1/jobs?limit=3&cursor=${first.nextCursor}`);
    expect(second.items.map((j) => j.id)).toEqual([...jobIds].reverse().slice(3));
    expect(second.nextCursor).toBeNull();
    const odd = await list('/v1/jobs?label=team:odd');
    expect(odd.items.map((j) => j.id)).toEqual([jobIds[3], jobIds[1]]);
  });

  it("shows a change made outside the api (the worker's counters) on the next read", async () => {
    await list('/v1/jobs');
    const lastRunAt = new Date('2026-01-02T03:04:05.000Z');
    await api.db.db
      .updateTable('jobs')
      .set({ run_count: 7, last_run_at: lastRunAt, last_run_status: 'succeeded' })
      .where('id', '=', jobIds[2]!)
      .execute();
    const item = (await list('/v1/jobs')).items.find((j) => j.id === jobIds[2])!;
    expect(item).toMatchObject({ runCount: 7, lastRunAt: lastRunAt.toISOString(), lastRunStatus: 'succeeded' });
  });

  it('leaves a deleted job out and never shows one to another service', async () => {
    const victim = jobIds[4]!;
    await list('/v1/jobs');
    const deleted = await api.app.inject({ method: 'DELETE', url: `/v1/jobs/${victim}`, headers });
    expect(deleted.statusCode).toBe(204);
    expect((await list('/v1/jobs')).items.map((j) => j.id)).not.toContain(victim);
    const stranger = await api.newService();
    const theirs = await api.app.inject({
      method: 'GET',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${stranger.apiKey}` },
    });
    expect(theirs.json()).toEqual({ items: [], nextCursor: null });
  });

  it('stops showing a skip once its instant has passed, though the row did not change', async () => {
    const id = jobIds[0]!;
    const until = new Date(Date.now() + 300);
    await api.db.db.updateTable('jobs').set({ skip_until: until }).where('id', '=', id).execute();
    const shown = (await list('/v1/jobs')).items.find((j) => j.id === id)!;
    // Read before the instant (the update and the read take far less than 300 ms) or already over.
    if (Date.now() < until.getTime()) expect(shown.skipUntil).toBe(until.toISOString());
    const deadline = Date.now() + 5_000;
    let skipUntil: unknown = shown.skipUntil;
    while (skipUntil !== null && Date.now() < deadline) {
      skipUntil = (await list('/v1/jobs')).items.find((j) => j.id === id)!.skipUntil;
    }
    expect(skipUntil).toBeNull();
  });

  it("shows a run's outcome on the next read of both run lists, on another instance too", async () => {
    const jobId = jobIds[1]!;
    const runId = uuidv7();
    await api.db.db
      .insertInto('runs')
      .values({
        id: runId,
        job_id: jobId,
        service_id: serviceId,
        job_version: 1,
        scheduled_for: new Date(),
        trigger: 'schedule',
        status: 'running',
        attempts: 1,
      })
      .execute();
    const other = await anotherInstance(api);
    await other.ready();
    try {
      for (const app of [api.app, other]) {
        expect((await list(`/v1/jobs/${jobId}/runs`, app)).items.map((r) => r.status)).toEqual(['running']);
        expect((await list('/v1/runs', app)).items.map((r) => r.status)).toEqual(['running']);
      }
      await api.db.db
        .updateTable('runs')
        .set({ status: 'succeeded', http_status: 200, finished_at: new Date() })
        .where('id', '=', runId)
        .execute();
      for (const app of [api.app, other]) {
        const ofJob = await list(`/v1/jobs/${jobId}/runs`, app);
        expect(ofJob.items).toEqual([(await app.inject({ method: 'GET', url: `/v1/runs/${runId}`, headers })).json()]);
        expect(ofJob.items[0]).toMatchObject({ status: 'succeeded', httpStatus: 200 });
        expect((await list('/v1/runs', app)).items.map((r) => r.status)).toEqual(['succeeded']);
      }
    } finally {
      await other.close();
    }
  });
});
