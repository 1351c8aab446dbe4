/**
 * Alerts through the api: `alertAfterMs` on jobs and `alertWebhookUrl` on services, validated
 * (problem+json naming the field, nothing changed), the alert watch of the api process judging
 * occurrences from Postgres alone (no worker runs in this file), `GET /v1/alerts` paginated and
 * isolated per service. The end-to-end test with real processes is e2e/alerts.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '@tickwork/core';
import { recordOccurrence } from '@tickwork/db';
import { ADMIN_TOKEN, startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  // Callbacks and webhooks held to the public-address rule, as in production; a job is judged
  // again 200 ms after its last judgement (the passes this file asks for, and the timer's).
  api = await startTestApi({ callbackAllowPrivate: false, alertWatchIntervalMs: 200 });
});
afterAll(async () => {
  await api?.close();
});

const job = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  schedule: { every: '1h' },
  target: { url: 'https://example.com/hook' },
  ...extra,
});

async function createJob(key: string, body: Record<string, unknown>) {
  return api.app.inject({ method: 'POST', url: '/v1/jobs', headers: bearer(key), payload: body });
}

describe('alertAfterMs', () => {
  it('is stored, shown and patched; null removes it', async () => {
    const service = await api.newService('alert-field');
    const created = await createJob(service.apiKey, job('watched', { alertAfterMs: 600_000 }));
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ alertAfterMs: 600_000, alert: null });
    const plain = await createJob(service.apiKey, job('plain'));
    expect(plain.json()).toMatchObject({ alertAfterMs: null, alert: null });
    const id = created.json().id;
    const patched = await api.app.inject({
      method: 'PATCH',
      url: `/v1/jobs/${id}`,
      headers: bearer(service.apiKey),
      payload: { alertAfterMs: 120_000 },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ alertAfterMs: 120_000, version: 2 });
    const removed = await api.app.inject({
      method: 'PATCH',
      url: `/v1/jobs/${id}`,
      headers: bearer(service.apiKey),
      payload: { alertAfterMs: null },
    });
    expect(removed.json()).toMatchObject({ alertAfterMs: null, version: 3 });
    // A job read back can be sent again as it is (the read-only `alert` aside).
    const { alert: _alert, ...readBack } = (
      await api.app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: bearer(service.apiKey) })
    ).json();
    expect(readBack).toHaveProperty('alertAfterMs', null);
  });

  it.each([
    [{ alertAfterMs: 999 }, 'alertAfterMs'],
    [{ alertAfterMs: 30 * 86_400_000 + 1 }, 'alertAfterMs'],
    [{ alertAfterMs: '10m' }, 'alertAfterMs'],
    [{ alertAfterMs: 1.5 }, 'alertAfterMs'],
    [{ alertAfterMs: 5_000, jitterMs: 5_000 }, 'alertAfterMs'],
  ])('refuses %j with problem+json naming %s, and creates nothing', async (extra, field) => {
    const service = await api.newService();
    const response = await createJob(service.apiKey, job('bad', extra));
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json().errors.map((e: { field: string }) => e.field)).toContain(field);
    const list = await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(service.apiKey) });
    expect(list.json().items).toEqual([]);
  });

  it('refuses a PATCH that makes alertAfterMs no more than jitterMs, and keeps the job', async () => {
    const service = await api.newService();
    const created = (await createJob(service.apiKey, job('jittery', { alertAfterMs: 10_000 }))).json();
    const response = await api.app.inject({
      method: 'PATCH',
      url: `/v1/jobs/${created.id}`,
      headers: bearer(service.apiKey),
      payload: { jitterMs: 20_000 },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().errors).toEqual([{ field: 'alertAfterMs', message: 'must be more than jitterMs' }]);
    const after = await api.app.inject({
      method: 'GET',
      url: `/v1/jobs/${created.id}`,
      headers: bearer(service.apiKey),
    });
    expect(after.json()).toMatchObject({ version: 1, jitterMs: 0, alertAfterMs: 10_000 });
  });
});

describe('alertWebhookUrl', () => {
  it('is set, shown and cleared by PATCH /v1/admin/services/{id}, quotas untouched', async () => {
    const service = await api.newService();
    const url = `/v1/admin/services/${service.id}`;
    const set = await api.app.inject({
      method: 'PATCH',
      url,
      headers: admin,
      payload: { alertWebhookUrl: 'https://example.com/alerts' },
    });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ alertWebhookUrl: 'https://example.com/alerts', quotas: { maxJobs: 10_000 } });
    expect((await api.app.inject({ method: 'GET', url, headers: admin })).json().alertWebhookUrl).toBe(
      'https://example.com/alerts',
    );
    const quotasOnly = await api.app.inject({
      method: 'PATCH',
      url,
      headers: admin,
      payload: { quotas: { maxJobs: 5 } },
    });
    expect(quotasOnly.json()).toMatchObject({ alertWebhookUrl: 'https://example.com/alerts', quotas: { maxJobs: 5 } });
    const cleared = await api.app.inject({ method: 'PATCH', url, headers: admin, payload: { alertWebhookUrl: null } });
    expect(cleared.json().alertWebhookUrl).toBeNull();
  });

  it.each([
    ['not a url', 'is not a valid URL'],
    ['ftp://example.com/alerts', 'only http and https'],
    ['https://user:secret@example.com/alerts', 'credentials in the URL'],
    ['http://127.0.0.1:8080/alerts', 'loopback'],
    ['http://169.254.169.254/latest/meta-data', 'link-local'],
    ['http://localhost/alerts', 'loopback'],
  ])('refuses %s under the callbacks’ destination rules, changing nothing', async (value, why) => {
    const service = await api.newService();
    const url = `/v1/admin/services/${service.id}`;
    const response = await api.app.inject({
      method: 'PATCH',
      url,
      headers: admin,
      payload: { alertWebhookUrl: value, quotas: { maxJobs: 7 } },
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toContain('application/problem+json');
    const [error] = response.json().errors;
    expect(error.field).toBe('alertWebhookUrl');
    expect(error.message).toContain(why);
    const after = (await api.app.inject({ method: 'GET', url, headers: admin })).json();
    expect(after).toMatchObject({ alertWebhookUrl: null, quotas: { maxJobs: 10_000 } });
  });

  it('refuses a value of the wrong type, and an unknown service answers 404', async () => {
    const service = await api.newService();
    const wrong = await api.app.inject({
      method: 'PATCH',
      url: `/v1/admin/services/${service.id}`,
      headers: admin,
      payload: { alertWebhookUrl: 42 },
    });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().errors[0].field).toBe('alertWebhookUrl');
    const missing = await api.app.inject({
      method: 'PATCH',
      url: `/v1/admin/services/${uuidv7()}`,
      headers: admin,
      payload: { alertWebhookUrl: 'https://example.com/alerts' },
    });
    expect(missing.statusCode).toBe(404);
  });
});

describe('the watch in the api process, and GET /v1/alerts', () => {
  it('opens not_fired when no worker fired, shows it on the job, resolves it on a later success', async () => {
    const service = await api.newService('alert-watch');
    // An interval job whose first occurrence is 1 s after creation: no worker runs here.
    const created = (
      await createJob(service.apiKey, job('never-fired', { schedule: { every: '1s' }, alertAfterMs: 1_000 }))
    ).json();
    const alert = await eventuallyOpen(service.apiKey, created.id);
    expect(alert).toMatchObject({ jobId: created.id, reason: 'not_fired', resolvedAt: null });
    const shown = (
      await api.app.inject({ method: 'GET', url: `/v1/jobs/${created.id}`, headers: bearer(service.apiKey) })
    ).json();
    expect(shown.alert).toEqual({ id: alert.id, reason: 'not_fired', openedAt: alert.openedAt });
    const listed = (await api.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(service.apiKey) })).json()
      .items;
    expect(listed.find((j: { id: string }) => j.id === created.id).alert.id).toBe(alert.id);

    // Another pass opens no second alert for the same job (more occurrences are missing by now).
    await api.app.alertWatch.pass();
    const open = await alertsOf(service.apiKey, '?state=open');
    expect(open.filter((a) => a.jobId === created.id)).toHaveLength(1);

    // A later occurrence succeeds (as a worker would record it): the alert resolves.
    const later = new Date(Date.parse(alert.scheduledFor) + 60_000);
    const { run } = await recordOccurrence(api.db.db, {
      id: uuidv7(),
      jobId: created.id,
      serviceId: service.id,
      jobVersion: 1,
      scheduledFor: later,
      trigger: 'schedule',
      status: 'succeeded',
    });
    expect(run.status).toBe('succeeded');
    await api.app.alertWatch.pass();
    const resolved = (
      await api.app.inject({ method: 'GET', url: `/v1/alerts/${alert.id}`, headers: bearer(service.apiKey) })
    ).json();
    expect(resolved.resolvedAt).not.toBeNull();
    // The job row cache hears of the resolve from its notification (within 1 s at most).
    await expect
      .poll(
        async () =>
          (
            await api.app.inject({ method: 'GET', url: `/v1/jobs/${created.id}`, headers: bearer(service.apiKey) })
          ).json().alert,
        { timeout: 1_000 },
      )
      .toBeNull();
    expect((await alertsOf(service.apiKey, '?state=resolved')).map((a) => a.id)).toContain(alert.id);
    expect((await alertsOf(service.apiKey, '?state=open')).map((a) => a.id)).not.toContain(alert.id);
  });

  it.each([
    ['failed', 'failed', null],
    ['dead', 'dead', null],
    ['skipped', 'skipped', 'overlap'],
    ['skipped', 'missed', 'missed'],
  ])('opens an alert for a %s run (%s)', async (status, reason, skipReason) => {
    const service = await api.newService();
    // Far in the future: the schedule names nothing soon, so only the recorded run is judged.
    const created = (
      await createJob(service.apiKey, job(`run-${reason}`, { schedule: { every: '1d' }, alertAfterMs: 1_000 }))
    ).json();
    await recordOccurrence(api.db.db, {
      id: uuidv7(),
      jobId: created.id,
      serviceId: service.id,
      jobVersion: 1,
      scheduledFor: new Date(Date.parse(created.createdAt) + 10),
      trigger: 'schedule',
      status: status as 'failed',
      skipReason: skipReason as 'overlap' | null,
    });
    const alert = await eventuallyOpen(service.apiKey, created.id);
    expect(alert.reason).toBe(reason);
  });

  it('opens nothing for a skip the client asked for (paused)', async () => {
    const service = await api.newService();
    const created = (
      await createJob(service.apiKey, job('paused-skip', { schedule: { every: '1d' }, alertAfterMs: 1_000 }))
    ).json();
    await recordOccurrence(api.db.db, {
      id: uuidv7(),
      jobId: created.id,
      serviceId: service.id,
      jobVersion: 1,
      scheduledFor: new Date(Date.parse(created.createdAt) + 10),
      trigger: 'schedule',
      status: 'skipped',
      skipReason: 'paused',
    });
    await waitPastDeadline(Date.parse(created.createdAt) + 10 + 1_000);
    await api.app.alertWatch.pass();
    expect(await alertsOf(service.apiKey, '')).toEqual([]);
  });

  it("pages with a cursor, filters by state and job, and shows no other service's alerts (404 by id)", async () => {
    const owner = await api.newService('alert-owner');
    const stranger = await api.newService('alert-stranger');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = (
        await createJob(owner.apiKey, job(`paged-${i}`, { schedule: { every: '1d' }, alertAfterMs: 1_000 }))
      ).json();
      await recordOccurrence(api.db.db, {
        id: uuidv7(),
        jobId: created.id,
        serviceId: owner.id,
        jobVersion: 1,
        scheduledFor: new Date(Date.parse(created.createdAt) + 10),
        trigger: 'schedule',
        status: 'dead',
      });
      ids.push((await eventuallyOpen(owner.apiKey, created.id)).id);
    }
    const first = (
      await api.app.inject({ method: 'GET', url: '/v1/alerts?limit=2', headers: bearer(owner.apiKey) })
    ).json();
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = (
      await api.app.inject({
        method: 'GET',
        url: `/v1/alerts?limit=2&cursor=${first.nextCursor}`,
        headers: bearer(owner.apiKey),
      })
    ).json();
    expect(second.nextCursor).toBeNull();
    const all = [...first.items, ...second.items].map((a: { id: string }) => a.id);
    expect(all).toEqual([...ids].reverse());

    const jobId = first.items[0].jobId;
    const ofJob = await alertsOf(owner.apiKey, `?jobId=${jobId}`);
    expect(ofJob.map((a) => a.jobId)).toEqual([jobId]);

    // The stranger sees none of them: not in its list, not by id, not by the job's id.
    expect(await alertsOf(stranger.apiKey, '')).toEqual([]);
    expect(await alertsOf(stranger.apiKey, `?jobId=${jobId}`)).toEqual([]);
    const byId = await api.app.inject({ method: 'GET', url: `/v1/alerts/${ids[0]}`, headers: bearer(stranger.apiKey) });
    expect(byId.statusCode).toBe(404);
    expect(byId.headers['content-type']).toContain('application/problem+json');
  });

  it.each([
    ['?state=closed', 'querystring.state'],
    ['?jobId=not-a-uuid', 'querystring.jobId'],
    ['?cursor=bm90LWEtY3Vyc29y', 'querystring.cursor'],
    ['?limit=0', 'querystring.limit'],
    ['?colour=red', 'querystring'],
  ])('refuses GET /v1/alerts%s with problem+json naming %s', async (query, field) => {
    const service = await api.newService();
    const response = await api.app.inject({
      method: 'GET',
      url: `/v1/alerts${query}`,
      headers: bearer(service.apiKey),
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(
      response
        .json()
        .errors.map((e: { field: string }) => e.field)
        .join(' '),
    ).toContain(field);
  });
});

interface AlertBody {
  id: string;
  jobId: string;
  scheduledFor: string;
  reason: string;
  openedAt: string;
  resolvedAt: string | null;
}

async function alertsOf(key: string, query: string): Promise<AlertBody[]> {
  const response = await api.app.inject({ method: 'GET', url: `/v1/alerts${query}`, headers: bearer(key) });
  expect(response.statusCode).toBe(200);
  return response.json().items;
}

/** Runs watch passes until the job has an open alert (a deadline of its own, no sleeps as sync). */
async function eventuallyOpen(key: string, jobId: string, timeoutMs = 15_000): Promise<AlertBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await api.app.alertWatch.pass();
    const found = (await alertsOf(key, `?state=open&jobId=${jobId}`))[0];
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no alert opened for job ${jobId} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits until the clock is past `instant`, polling (the watch judges an occurrence only after its deadline). */
async function waitPastDeadline(instant: number): Promise<void> {
  while (Date.now() <= instant + 50) await new Promise((resolve) => setTimeout(resolve, 50));
}
