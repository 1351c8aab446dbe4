/** Bull Board at /admin/queues: operators only, and read-only for the fire queue. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BOARD_SCHEDULER_LIMIT } from '../src/plugins/bull-board.ts';
import { ADMIN_TOKEN, startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let queue: Queue;
let jobId: string;

beforeAll(async () => {
  api = await startTestApi();
  queue = new Queue('fire', {
    connection: new Redis(api.redisUrl, { maxRetriesPerRequest: null }),
    prefix: api.prefix,
  });
  const { apiKey } = await api.newService('board-test');
  const created = await api.app.inject({
    method: 'POST',
    url: '/v1/jobs',
    headers: { authorization: `Bearer ${apiKey}` },
    payload: { name: 'hourly', schedule: { cron: '0 * * * *' }, target: { url: 'https://example.com/hook' } },
  });
  expect(created.statusCode).toBe(201);
  jobId = created.json().id;
});
afterAll(async () => {
  await queue?.close();
  await api?.close();
});

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('/admin/queues', () => {
  it.each([
    ['no credentials', undefined],
    ['a wrong Basic password', basic('ops', 'not-the-admin-token')],
    ['the token as Basic user name instead of password', basic(ADMIN_TOKEN, '')],
    ['a wrong bearer token', 'Bearer not-the-admin-token'],
  ])('answers 401 with a Basic challenge to %s', async (_what, authorization) => {
    for (const url of ['/admin/queues', '/admin/queues/api/queues', `/admin/queues/api/queues/fire/x`]) {
      const response = await api.app.inject({ method: 'GET', url, headers: authorization ? { authorization } : {} });
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toMatch(/^Basic realm="Tickwork operators"/);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json()).toMatchObject({ status: 401, detail: expect.stringMatching(/admin token/) });
      expect(response.body).not.toContain('counts');
    }
  });

  it.each([
    ['HTTP Basic with any user name and the admin token as password', basic('anyone', ADMIN_TOKEN)],
    ['Bearer with the admin token', `Bearer ${ADMIN_TOKEN}`],
  ])('opens with %s', async (_what, authorization) => {
    const page = await api.app.inject({ method: 'GET', url: '/admin/queues', headers: { authorization } });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    const queues = await api.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { authorization } });
    expect(queues.statusCode).toBe(200);
    const fire = queues.json().queues.find((q: { name: string }) => q.name === 'fire');
    expect(fire).toMatchObject({ readOnlyMode: true, counts: expect.objectContaining({ delayed: 1 }) });
  });

  it('refuses every change to the queue, its jobs and its schedulers', async () => {
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const schedulerId = encodeURIComponent(`job:${jobId}:v1`);
    const [delayed] = await queue.getDelayed();
    const attempts: Array<['PUT' | 'PATCH' | 'POST', string, object?]> = [
      ['PUT', '/admin/queues/api/queues/fire/pause'],
      ['PUT', '/admin/queues/api/queues/fire/empty'],
      ['PUT', '/admin/queues/api/queues/fire/obliterate'],
      ['PUT', '/admin/queues/api/queues/fire/clean/delayed'],
      ['POST', '/admin/queues/api/queues/fire/add', { name: 'fire', data: {} }],
      ['PUT', `/admin/queues/api/queues/fire/job-schedulers/${schedulerId}/remove`],
      ['PUT', `/admin/queues/api/queues/fire/job-schedulers/${schedulerId}/run`],
      ['PATCH', `/admin/queues/api/queues/fire/job-schedulers/${schedulerId}`, { every: 1000 }],
      ['PUT', `/admin/queues/api/queues/fire/${encodeURIComponent(delayed!.id!)}/promote`],
      [
        'PATCH',
        `/admin/queues/api/queues/fire/${encodeURIComponent(delayed!.id!)}/update-data`,
        { jobData: { jobId: 'elsewhere' } },
      ],
    ];
    for (const [method, url, payload] of attempts) {
      const response = await api.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
      expect(response.statusCode, `${method} ${url}`).toBe(405);
    }
    await api.app.inject({ method: 'PUT', url: '/admin/queues/api/queues/pause', headers });
    expect(await queue.isPaused()).toBe(false);
    expect(await queue.getJobSchedulersCount()).toBe(1);
    expect(await queue.getJobCounts('delayed', 'waiting')).toEqual({ delayed: 1, waiting: 0 });
  });

  it('names each occurrence and scheduler by its service and job, from Postgres', async () => {
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const listed = await api.app.inject({
      method: 'GET',
      url: '/admin/queues/api/queues?activeQueue=fire&status=delayed&page=1&jobsPerPage=10',
      headers,
    });
    const fire = listed.json().queues.find((q: { name: string }) => q.name === 'fire');
    const occurrence = fire.jobs.find((j: { data: { jobId?: string } }) => j.data.jobId === jobId);
    expect(occurrence.name).toBe('board-test / hourly');
    const one = await api.app.inject({
      method: 'GET',
      url: `/admin/queues/api/queues/fire/${encodeURIComponent(occurrence.id)}`,
      headers,
    });
    expect(one.json().job.name).toBe('board-test / hourly');
    const schedulers = await api.app.inject({ method: 'GET', url: '/admin/queues/api/job-schedulers', headers });
    const own = schedulers.json().schedulers.find((s: { id: string }) => s.id === `job:${jobId}:v1`);
    expect(own.name).toBe('board-test / hourly');
    // Redis keeps ids only: the name is not stored there.
    const stored = await queue.getJobScheduler(`job:${jobId}:v1`);
    expect(stored?.name).toBe('fire');
  });

  it(`lists only the ${BOARD_SCHEDULER_LIMIT} schedulers due soonest, and counts them all`, async () => {
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const extra = BOARD_SCHEDULER_LIMIT + 20;
    const base = Date.now() + 2 * 3_600_000;
    await Promise.all(
      Array.from({ length: extra }, (_, i) =>
        queue.upsertJobScheduler(
          `board-load-${i}`,
          { every: 86_400_000, startDate: base + i * 1_000 },
          { name: 'fire', data: {} },
        ),
      ),
    );
    const listed = await api.app.inject({ method: 'GET', url: '/admin/queues/api/job-schedulers', headers });
    expect(listed.statusCode).toBe(200);
    const schedulers: Array<{ id: string; next: number }> = listed.json().schedulers;
    expect(schedulers).toHaveLength(BOARD_SCHEDULER_LIMIT);
    const nexts = schedulers.map((scheduler) => scheduler.next);
    expect(nexts).toEqual([...nexts].sort((a, b) => a - b));
    // The api's own hourly job comes due before any of these.
    expect(schedulers[0]!.id).toBe(`job:${jobId}:v1`);

    const queues = await api.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers });
    const fire = queues.json().queues.find((q: { name: string }) => q.name === 'fire');
    expect(fire.jobSchedulerCount).toBe(extra + 1);
  });
});
