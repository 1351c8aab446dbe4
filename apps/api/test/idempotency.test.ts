/** POST /v1/jobs with Idempotency-Key: replays, mismatches, the in-flight window and the 50-request race. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;
let serviceId: string;

beforeAll(async () => {
  api = await startTestApi();
  const service = await api.newService('idem');
  key = service.apiKey;
  serviceId = service.id;
});
afterAll(async () => {
  await api?.close();
});

const body = (name: string) => ({ name, schedule: { every: '1h' }, target: { url: 'https://example.com/hook' } });
const post = (payload: unknown, idempotencyKey?: string, token = key) =>
  api.app.inject({
    method: 'POST',
    url: '/v1/jobs',
    headers: {
      authorization: `Bearer ${token}`,
      ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }),
    },
    payload: payload as object,
  });
const jobsNamed = async (name: string) =>
  (await api.db.db.selectFrom('jobs').select('id').where('name', '=', name).execute()).map((r) => r.id);

describe('Idempotency-Key', () => {
  it('answers a repeat with the stored status, headers and body, whatever the key order of the JSON', async () => {
    const first = await post(body('idem-1'), 'key-1');
    expect(first.statusCode).toBe(201);
    const reordered = { target: { url: 'https://example.com/hook' }, schedule: { every: '1h' }, name: 'idem-1' };
    const again = await post(reordered, '"key-1"');
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect(again.headers.location).toBe(first.headers.location);
    expect(again.headers.etag).toBe(first.headers.etag);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await jobsNamed('idem-1')).toHaveLength(1);
  });

  it('answers 422 to the same key with another body', async () => {
    await post(body('idem-2'), 'key-2');
    const other = await post(body('idem-2-other'), 'key-2');
    expect(other.statusCode).toBe(422);
    expect(other.headers['content-type']).toContain('application/problem+json');
    expect(await jobsNamed('idem-2-other')).toHaveLength(0);
  });

  it('answers 409 while the first request under the key is still running', async () => {
    await api.db.db
      .insertInto('idempotency_keys')
      .values({ service_id: serviceId, key: 'key-busy', fingerprint: 'x', expires_at: new Date(Date.now() + 60_000) })
      .execute();
    // Same fingerprint as the in-flight one: 409, not 422.
    const { requestFingerprint } = await import('@tickwork/core');
    await api.db.db
      .updateTable('idempotency_keys')
      .set({ fingerprint: requestFingerprint('POST', '/v1/jobs', body('idem-busy')) })
      .where('key', '=', 'key-busy')
      .execute();
    const response = await post(body('idem-busy'), 'key-busy');
    expect(response.statusCode).toBe(409);
    expect(response.headers['retry-after']).toBe('1');
    expect(await jobsNamed('idem-busy')).toHaveLength(0);
  });

  it('stores a refusal too, takes over an abandoned or expired key, and scopes keys per service', async () => {
    const bad = { ...body('idem-bad'), schedule: { cron: '61 * * * *' } };
    expect((await post(bad, 'key-bad')).statusCode).toBe(400);
    const repeat = await post(bad, 'key-bad');
    expect(repeat.statusCode).toBe(400);
    expect(repeat.headers['idempotent-replayed']).toBe('true');
    expect(repeat.json().errors[0].field).toBe('schedule.cron');

    const { requestFingerprint } = await import('@tickwork/core');
    await api.db.db
      .insertInto('idempotency_keys')
      .values({
        service_id: serviceId,
        key: 'key-abandoned',
        fingerprint: requestFingerprint('POST', '/v1/jobs', body('idem-abandoned')),
        created_at: new Date(Date.now() - 120_000),
        expires_at: new Date(Date.now() + 60_000),
      })
      .execute();
    expect((await post(body('idem-abandoned'), 'key-abandoned')).statusCode).toBe(201);
    await api.db.db
      .insertInto('idempotency_keys')
      .values({
        service_id: serviceId,
        key: 'key-expired',
        fingerprint: 'old',
        status_code: 201,
        response: '{}',
        expires_at: new Date(Date.now() - 1),
      })
      .execute();
    expect((await post(body('idem-expired'), 'key-expired')).statusCode).toBe(201);

    const other = await api.newService('idem-other');
    expect((await post(body('idem-1'), 'key-1', other.apiKey)).statusCode).toBe(201);
    expect((await post(body('x'), '')).statusCode).toBe(400);
  });

  it('makes exactly one job of 50 parallel requests with one key', async () => {
    const responses = await Promise.all(Array.from({ length: 50 }, () => post(body('idem-race'), 'key-race')));
    const created = responses.filter((r) => r.statusCode === 201);
    expect(responses.every((r) => r.statusCode === 201 || r.statusCode === 409)).toBe(true);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map((r) => r.json().id)).size).toBe(1);
    expect(await jobsNamed('idem-race')).toHaveLength(1);
    const after = await post(body('idem-race'), 'key-race');
    expect(after.statusCode).toBe(201);
    expect(after.json().id).toBe(created[0]!.json().id);
  });
});
