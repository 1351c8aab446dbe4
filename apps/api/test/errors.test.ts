/**
 * Every error is RFC 9457 problem+json, and none leaks a stack or an internal message: unknown
 * routes, wrong methods, bad media types, oversized bodies and headers, malformed HTTP, unexpected
 * throws.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import errorsPlugin from '../src/plugins/errors.ts';
import { startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;
let base: string;

beforeAll(async () => {
  api = await startTestApi();
  key = (await api.newService('errors')).apiKey;
  base = await api.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await api?.close();
});

function expectProblem(
  response: { statusCode: number; headers: Record<string, unknown>; body: string },
  status: number,
) {
  expect(response.statusCode).toBe(status);
  expect(String(response.headers['content-type'])).toContain('application/problem+json');
  const problem = JSON.parse(response.body);
  expect(problem).toMatchObject({
    status,
    type: expect.stringMatching(/^https:\/\//),
    title: expect.any(String),
    detail: expect.any(String),
    code: expect.any(String),
  });
  expect(response.body).not.toMatch(/\bat .*\.(ts|js):\d+|node_modules|stack/);
  return problem;
}

describe('problem+json for every error', () => {
  it('404 for an unknown route', async () => {
    const response = await api.app.inject({ method: 'GET', url: '/v1/nowhere' });
    expect(expectProblem(response, 404).code).toBe('not_found');
  });

  it('405 with Allow for a known route and another method', async () => {
    const response = await api.app.inject({
      method: 'PUT',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${key}` },
    });
    const problem = expectProblem(response, 405);
    expect(problem.code).toBe('method_not_allowed');
    expect(String(response.headers.allow)).toMatch(/GET.*POST/);
    const withParam = await api.app.inject({ method: 'PUT', url: '/v1/jobs/0190a0a0-0000-7000-8000-000000000000' });
    expectProblem(withParam, 405);
    expect(String(withParam.headers.allow)).toContain('DELETE');
  });

  it('415 for a body that is not JSON', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'text/plain' },
      payload: 'name=x',
    });
    expect(expectProblem(response, 415).code).toBe('unsupported_media_type');
    const form = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'name=x',
    });
    expectProblem(form, 415);
  });

  it('400 for malformed JSON', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      payload: '{"name": ',
    });
    expectProblem(response, 400);
  });

  it('413 for a body over 64 KiB, without reading it into a job', async () => {
    const response = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      payload: JSON.stringify({
        name: 'big',
        schedule: { every: '1m' },
        target: { url: 'https://example.com', body: 'x'.repeat(70_000) },
      }),
    });
    expect(expectProblem(response, 413).code).toBe('payload_too_large');
    expect(await api.db.db.selectFrom('jobs').select('id').execute()).toHaveLength(0);
  });

  it('400 for an over-long string and an unknown field', async () => {
    const long = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${key}` },
      payload: { name: 'x'.repeat(201), schedule: { every: '1m' }, target: { url: 'https://example.com' } },
    });
    expect(expectProblem(long, 400).errors.map((e: { field: string }) => e.field)).toContain('name');
    const unknown = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${key}` },
      payload: { name: 'x', schedule: { every: '1m' }, target: { url: 'https://example.com' }, owner: 'me' },
    });
    expect(expectProblem(unknown, 400).errors).toContainEqual({ field: 'owner', message: 'is not a known field' });
  });

  it('400 naming the field for strings Postgres cannot store (NUL, unpaired surrogates), nothing written', async () => {
    const cases: Array<[string, string]> = [
      [
        '{"name":"a","description":"x\\u0000y","schedule":{"every":"1m"},"target":{"url":"https://example.com"}}',
        'description',
      ],
      ['{"name":"a","schedule":{"every":"1m"},"target":{"url":"https://example.com","body":"\\ud800"}}', 'target.body'],
      [
        '{"name":"a","schedule":{"every":"1m"},"target":{"url":"https://example.com","body":{"\\udc00":1}}}',
        'target.body.\udc00',
      ],
    ];
    for (const [payload, field] of cases) {
      const response = await api.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        payload,
      });
      expect(expectProblem(response, 400).errors.map((e: { field: string }) => e.field)).toEqual([field]);
    }
    expect(await api.db.db.selectFrom('jobs').select('id').execute()).toHaveLength(0);
  });

  it('431 and 400 from the HTTP parser itself, over a real socket', async () => {
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const { port, hostname } = new URL(base);
        const socket = connect(Number(port), hostname, () => socket.end(request));
        let data = '';
        socket.on('data', (d) => (data += d.toString()));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
    const huge = await raw(`GET /v1/jobs HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 431/);
    expect(huge).toContain('application/problem+json');
    expect(JSON.parse(huge.slice(huge.indexOf('\r\n\r\n') + 4))).toMatchObject({
      status: 431,
      code: 'headers_too_large',
    });
    const garbage = await raw('THIS IS NOT HTTP\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    expect(garbage).toContain('application/problem+json');
  });

  it('500 that says nothing of the cause', async () => {
    const app = Fastify({ logger: false });
    await app.register(errorsPlugin);
    app.get('/boom', async () => {
      throw new Error('password authentication failed for user "tickwork" at 10.0.0.5');
    });
    app.get('/boom-typed', async () => {
      throw Object.assign(new TypeError('Cannot read properties of undefined'), { statusCode: 500 });
    });
    for (const url of ['/boom', '/boom-typed']) {
      const response = await app.inject({ method: 'GET', url });
      const problem = expectProblem(response, 500);
      expect(problem.code).toBe('internal');
      expect(response.body).not.toMatch(/password|10\.0\.0\.5|TypeError|undefined/);
    }
    await app.close();
  });
});
