/** /metrics of the api: real requests, a real pool and Redis, the exposition parsed. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition, sampleValue } from '@tickwork/testkit';
import { startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;

beforeAll(async () => {
  api = await startTestApi();
  key = (await api.newService('metrics-test')).apiKey;
});
afterAll(async () => {
  await api?.close();
});

async function scrape() {
  const response = await api.app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(response.body);
}

describe('GET /metrics', () => {
  // First in the file: the queue gauges cache one Redis read for 5 s, so this scrape must be the first.
  it('reports readiness, the pool, the queue by state and the schedulers', async () => {
    const created = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${key}` },
      payload: { name: 'hourly', schedule: { cron: '0 * * * *' }, target: { url: 'https://example.com/hook' } },
    });
    expect(created.statusCode).toBe(201);

    const families = await scrape();
    expect(sampleValue(families, 'tickwork_ready')).toBe(1);
    expect(sampleValue(families, 'tickwork_db_pool_total')).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, 'tickwork_db_pool_idle')).toBeGreaterThanOrEqual(0);
    expect(sampleValue(families, 'tickwork_db_pool_waiting')).toBe(0);
    expect(sampleValue(families, 'tickwork_schedulers')).toBe(1);
    // The hourly job's next occurrence waits in Redis as a delayed job.
    expect(sampleValue(families, 'tickwork_queue_jobs', { state: 'delayed' })).toBe(1);
    for (const state of ['waiting', 'active', 'failed'])
      expect(sampleValue(families, 'tickwork_queue_jobs', { state })).toBe(0);
    expect(families.has('process_resident_memory_bytes')).toBe(true);
  });

  it('times requests by route pattern, never by raw URL', async () => {
    const id = '0190a5d4-0000-7000-8000-000000000001';
    const missing = await api.app.inject({
      method: 'GET',
      url: `/v1/jobs/${id}`,
      headers: { authorization: `Bearer ${key}` },
    });
    expect(missing.statusCode).toBe(404);
    expect((await api.app.inject({ method: 'GET', url: `/no/such/${id}` })).statusCode).toBe(404);

    const families = await scrape();
    const http = families.get('http_request_duration_seconds');
    expect(http?.type).toBe('histogram');
    expect(
      sampleValue(families, 'http_request_duration_seconds_count', {
        method: 'GET',
        route: '/v1/jobs/:id',
        status_code: '404',
      }),
    ).toBe(1);
    expect(
      sampleValue(families, 'http_request_duration_seconds_count', {
        method: 'GET',
        route: 'unmatched',
        status_code: '404',
      }),
    ).toBe(1);
    expect(
      sampleValue(families, 'http_request_duration_seconds_count', {
        method: 'POST',
        route: '/v1/admin/services',
        status_code: '201',
      }),
    ).toBe(1);
    expect(http?.samples.some((sample) => JSON.stringify(sample.labels).includes(id))).toBe(false);
  });

  it('is in the API document as an operation without credentials, answering text', async () => {
    const document = (await api.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const operation = document.paths['/metrics'].get;
    expect(operation.security).toEqual([]);
    expect(Object.keys(operation.responses['200'].content)).toEqual(['text/plain']);
  });
});
