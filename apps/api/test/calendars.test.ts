/**
 * Exclusion calendars over REST, against a real Postgres and Redis: their life (create, list,
 * get, patch, delete), bad input answered as problem+json naming the field with nothing changed,
 * jobs that list them (create, patch, response), the previews that leave excluded days out or mark
 * them, and one service's calendars out of another's reach.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let owner: { id: string; apiKey: string };
let stranger: { id: string; apiKey: string };

async function call(
  key: string,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: unknown,
): Promise<{ status: number; body: any; contentType: string | undefined }> {
  const response = await api.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}` },
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  return {
    status: response.statusCode,
    body: response.body === '' ? undefined : response.json(),
    contentType: response.headers['content-type'] as string | undefined,
  };
}

const fields = (body: { errors?: Array<{ field: string }> }) => (body.errors ?? []).map((e) => e.field);
const calendarRows = () => api.db.db.selectFrom('calendars').selectAll().orderBy('id').execute();

beforeAll(async () => {
  api = await startTestApi();
  owner = await api.newService('cal-owner');
  stranger = await api.newService('cal-stranger');
});
afterAll(async () => {
  await api?.close();
});

describe('calendars', () => {
  it('are created, read, listed by cursor, changed and deleted', async () => {
    const created = await call(owner.apiKey, 'POST', '/v1/calendars', {
      name: 'berlin',
      timezone: 'Europe/Berlin',
      dates: ['2026-12-26', '2026-12-25', '2026-12-26'],
      ranges: [{ from: '2026-12-31', to: '2027-01-01' }],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'berlin',
      timezone: 'Europe/Berlin',
      dates: ['2026-12-25', '2026-12-26'],
      ranges: [{ from: '2026-12-31', to: '2027-01-01' }],
    });
    const id = created.body.id as string;
    expect((await call(owner.apiKey, 'GET', `/v1/calendars/${id}`)).body).toEqual(created.body);

    const utc = await call(owner.apiKey, 'POST', '/v1/calendars', { name: 'plain' });
    expect(utc.body).toMatchObject({ timezone: 'UTC', dates: [], ranges: [] });
    const first = await call(owner.apiKey, 'GET', '/v1/calendars?limit=1');
    expect(first.body.items.map((c: { id: string }) => c.id)).toEqual([utc.body.id]);
    const second = await call(owner.apiKey, 'GET', `/v1/calendars?limit=1&cursor=${first.body.nextCursor}`);
    expect(second.body.items.map((c: { id: string }) => c.id)).toEqual([id]);
    expect(second.body.nextCursor).toBeNull();

    const patched = await call(owner.apiKey, 'PATCH', `/v1/calendars/${id}`, { dates: ['2027-12-25'] });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ name: 'berlin', dates: ['2027-12-25'], ranges: created.body.ranges });

    expect((await call(owner.apiKey, 'DELETE', `/v1/calendars/${id}`)).status).toBe(204);
    expect((await call(owner.apiKey, 'GET', `/v1/calendars/${id}`)).status).toBe(404);
    expect((await call(owner.apiKey, 'DELETE', `/v1/calendars/${utc.body.id}`)).status).toBe(204);
  });

  it('refuses bad input with problem+json naming each field, and stores nothing', async () => {
    const before = await calendarRows();
    const cases: Array<[unknown, string[]]> = [
      [{ name: 'x', timezone: 'Mars/Olympus' }, ['timezone']],
      [{ name: 'x', dates: ['2026-02-30'] }, ['dates.0']],
      [{ name: 'x', dates: ['2026-12-25', '25.12.2026'] }, ['dates.1']],
      [{ name: 'x', ranges: [{ from: '2026-12-31', to: '2026-12-01' }] }, ['ranges.0.to']],
      [{ name: 'x', ranges: [{ from: '2026-12-31' }] }, ['ranges.0.to']],
      [{ name: 'x', dates: Array.from({ length: 1001 }, () => '2026-12-25') }, ['dates']],
      [{ name: '' }, ['name']],
      [{ name: 'x', colour: 'red' }, ['colour']],
    ];
    for (const [payload, expected] of cases) {
      const answer = await call(owner.apiKey, 'POST', '/v1/calendars', payload);
      expect(answer.status, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect(answer.contentType).toContain('application/problem+json');
      expect(fields(answer.body)).toEqual(expected);
    }
    const kept = await call(owner.apiKey, 'POST', '/v1/calendars', { name: 'kept', dates: ['2026-12-25'] });
    const badPatch = await call(owner.apiKey, 'PATCH', `/v1/calendars/${kept.body.id}`, {
      dates: ['2026-12-24'],
      ranges: [{ from: '2027-01-02', to: '2027-01-01' }],
    });
    expect(badPatch.status).toBe(400);
    expect(fields(badPatch.body)).toEqual(['ranges.0.to']);
    expect((await call(owner.apiKey, 'GET', `/v1/calendars/${kept.body.id}`)).body.dates).toEqual(['2026-12-25']);
    const twin = await call(owner.apiKey, 'POST', '/v1/calendars', { name: 'kept' });
    expect(twin.status).toBe(409);
    expect(fields(twin.body)).toEqual(['name']);
    expect((await calendarRows()).length).toBe(before.length + 1);
    await call(owner.apiKey, 'DELETE', `/v1/calendars/${kept.body.id}`);
  });

  it("are out of another service's reach: 404 on each route, absent from its list, refused in its jobs", async () => {
    const mine = await call(owner.apiKey, 'POST', '/v1/calendars', { name: 'private', dates: ['2026-12-25'] });
    const id = mine.body.id as string;
    const before = await calendarRows();
    for (const [method, payload] of [
      ['GET', undefined],
      ['PATCH', { name: 'stolen' }],
      ['DELETE', undefined],
    ] as const) {
      const answer = await call(stranger.apiKey, method, `/v1/calendars/${id}`, payload);
      expect(answer.status, method).toBe(404);
      expect(answer.contentType).toContain('application/problem+json');
    }
    expect(JSON.stringify((await call(stranger.apiKey, 'GET', '/v1/calendars')).body)).not.toContain(id);
    const job = await call(stranger.apiKey, 'POST', '/v1/jobs', {
      name: 'theirs',
      schedule: { every: '1h' },
      target: { url: 'https://example.com/x' },
      calendars: [id],
    });
    expect(job.status).toBe(400);
    expect(job.body.errors).toEqual([{ field: 'calendars.0', message: `no calendar ${id} in this service` }]);
    const preview = await call(stranger.apiKey, 'POST', '/v1/schedules/preview', {
      schedule: { every: '1h' },
      calendars: [id],
    });
    expect(preview.status).toBe(400);
    expect(fields(preview.body)).toEqual(['calendars.0']);
    expect(await calendarRows()).toEqual(before);
    expect((await api.db.db.selectFrom('jobs').select('id').where('name', '=', 'theirs').execute()).length).toBe(0);
    await call(owner.apiKey, 'DELETE', `/v1/calendars/${id}`);
  });
});

describe('jobs with calendars', () => {
  it('list them, honour them in next-runs and nextRunAt, and keep a listed calendar from deletion', async () => {
    // Every day at 09:00 in Berlin; the calendar excludes tomorrow and the day after, Berlin time.
    const day = (offset: number) =>
      new Date(Date.now() + offset * 86_400_000).toLocaleDateString('en-CA', { timeZone: 'Europe/Berlin' });
    const calendar = await call(owner.apiKey, 'POST', '/v1/calendars', {
      name: 'soon',
      timezone: 'Europe/Berlin',
      dates: [day(1)],
      ranges: [{ from: day(2), to: day(2) }],
    });
    const calendarId = calendar.body.id as string;
    const spare = await call(owner.apiKey, 'POST', '/v1/calendars', { name: 'spare' });
    const created = await call(owner.apiKey, 'POST', '/v1/jobs', {
      name: 'daily',
      schedule: { cron: '0 9 * * *', timezone: 'Europe/Berlin' },
      target: { url: 'https://example.com/daily' },
      calendars: [calendarId],
    });
    expect(created.status).toBe(201);
    expect(created.body.calendars).toEqual([calendarId]);
    const jobId = created.body.id as string;
    const berlinDay = (iso: string) => new Date(iso).toLocaleDateString('en-CA', { timeZone: 'Europe/Berlin' });
    expect([day(1), day(2)]).not.toContain(berlinDay(created.body.nextRunAt));

    const next = await call(owner.apiKey, 'GET', `/v1/jobs/${jobId}/next-runs?count=5`);
    expect(next.status).toBe(200);
    expect(next.body.occurrences).toBeUndefined();
    expect(next.body.nextRuns).toHaveLength(5);
    for (const at of next.body.nextRuns) expect([day(1), day(2)]).not.toContain(berlinDay(at));

    const marked = await call(owner.apiKey, 'GET', `/v1/jobs/${jobId}/next-runs?count=5&includeExcluded=true`);
    const excludedDays = marked.body.occurrences
      .filter((o: { excluded: boolean }) => o.excluded)
      .map((o: { at: string }) => berlinDay(o.at));
    expect(excludedDays).toEqual([day(1), day(2)]);
    expect(marked.body.nextRuns).toEqual(
      marked.body.occurrences.filter((o: { excluded: boolean }) => !o.excluded).map((o: { at: string }) => o.at),
    );

    const preview = await call(owner.apiKey, 'POST', '/v1/schedules/preview', {
      schedule: { cron: '0 9 * * *', timezone: 'Europe/Berlin' },
      calendars: [calendarId],
      count: 5,
      includeExcluded: true,
    });
    expect(preview.body).toEqual(marked.body);

    // In use: the delete is refused and names the job.
    const refused = await call(owner.apiKey, 'DELETE', `/v1/calendars/${calendarId}`);
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toContain(jobId);
    expect((await call(owner.apiKey, 'GET', `/v1/calendars/${calendarId}`)).status).toBe(200);

    // Listed twice, or unknown: 400 naming the entry, the job unchanged.
    const twice = await call(owner.apiKey, 'PATCH', `/v1/jobs/${jobId}`, { calendars: [spare.body.id, spare.body.id] });
    expect(twice.status).toBe(400);
    expect(fields(twice.body)).toEqual(['calendars.1']);
    const unknown = '0190b6c4-0000-7000-8000-00000000abcd';
    const missing = await call(owner.apiKey, 'PATCH', `/v1/jobs/${jobId}`, { calendars: [spare.body.id, unknown] });
    expect(missing.status).toBe(400);
    expect(fields(missing.body)).toEqual(['calendars.1']);
    expect((await call(owner.apiKey, 'GET', `/v1/jobs/${jobId}`)).body.version).toBe(1);

    // Moved to the spare calendar, the first one can go; null removes them all.
    const moved = await call(owner.apiKey, 'PATCH', `/v1/jobs/${jobId}`, { calendars: [spare.body.id] });
    expect(moved.status).toBe(200);
    expect(moved.body.calendars).toEqual([spare.body.id]);
    expect((await call(owner.apiKey, 'DELETE', `/v1/calendars/${calendarId}`)).status).toBe(204);
    const cleared = await call(owner.apiKey, 'PATCH', `/v1/jobs/${jobId}`, { calendars: null });
    expect(cleared.body.calendars).toEqual([]);
    expect((await call(owner.apiKey, 'DELETE', `/v1/calendars/${spare.body.id}`)).status).toBe(204);
  });

  it("moves a job's nextRunAt when a calendar it lists changes, without a new version", async () => {
    const berlinDay = (iso: string) => new Date(iso).toLocaleDateString('en-CA', { timeZone: 'Europe/Berlin' });
    const calendar = await call(owner.apiKey, 'POST', '/v1/calendars', { name: 'later', timezone: 'Europe/Berlin' });
    const created = await call(owner.apiKey, 'POST', '/v1/jobs', {
      name: 'nine',
      schedule: { cron: '0 9 * * *', timezone: 'Europe/Berlin' },
      target: { url: 'https://example.com/nine' },
      calendars: [calendar.body.id],
    });
    const first = created.body.nextRunAt as string;
    const patched = await call(owner.apiKey, 'PATCH', `/v1/calendars/${calendar.body.id}`, {
      dates: [berlinDay(first)],
    });
    expect(patched.status).toBe(200);
    const job = (await call(owner.apiKey, 'GET', `/v1/jobs/${created.body.id}`)).body;
    expect(job.version).toBe(1);
    // The next day's 09:00 in Berlin (a day later, give or take a clock change).
    const dayAfter = berlinDay(new Date(Date.parse(first) + 86_400_000).toISOString());
    expect(berlinDay(job.nextRunAt)).toBe(dayAfter);
    expect(new Date(job.nextRunAt).toLocaleTimeString('en-GB', { timeZone: 'Europe/Berlin' })).toBe('09:00:00');
    await call(owner.apiKey, 'PATCH', `/v1/calendars/${calendar.body.id}`, { dates: [] });
    expect((await call(owner.apiKey, 'GET', `/v1/jobs/${created.body.id}`)).body.nextRunAt).toBe(first);
    await call(owner.apiKey, 'DELETE', `/v1/jobs/${created.body.id}`);
    await call(owner.apiKey, 'DELETE', `/v1/calendars/${calendar.body.id}`);
  });
});
