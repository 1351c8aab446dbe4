/**
 * A callback carries the body the caller stored, byte for byte, through a real api, worker and
 * sink: JSON keeps its key order (integer-like keys too) and spacing, a string goes as it is, and
 * the content-type matches (the job's own header first, else application/json or text/plain).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  ADMIN_TOKEN,
  call,
  startApi,
  startWorker,
  type FleetEnv,
  type Proc,
  startSink,
  type Sink,
  deletePrefix,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc;
let sink: Sink;
let token: string;

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_body');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  sink = await startSink();
  [api, worker] = await Promise.all([startApi(env), startWorker(env)]);
  const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'bodies' } });
  token = service.body.apiKey;
});
afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

/** Sends `text` as it is: the point is bytes no JSON.stringify would write. */
async function sendRaw(method: 'POST' | 'PATCH', path: string, text: string, contentType = 'application/json') {
  const response = await request(`${api.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
    body: text,
  });
  const answer = await response.body.text();
  expect(response.statusCode, answer).toBeLessThan(300);
  return JSON.parse(answer);
}

/** Runs the job now and returns the callback the sink got. */
async function delivered(jobId: string, path: string) {
  const before = sink.received.filter((r) => r.path === path).length;
  const run = await call(api, 'POST', `/v1/jobs/${jobId}/trigger`, { token });
  expect(run.status).toBe(202);
  await sink.waitFor((all) => all.filter((r) => r.path === path).length > before, 20_000, `a callback at ${path}`);
  return sink.received.filter((r) => r.path === path).at(-1)!;
}

const job = (name: string, path: string, target: string) =>
  `{"name":"${name}","schedule":{"every":"1h"},"target":{"url":"${sink.url}${path}",${target}}}`;

describe('the callback body', () => {
  it('is the JSON text as sent, with application/json; the resource shows it as JSON', async () => {
    const body = '{ "zeta": 1,\n  "alpha": [1, 2.50, {"b":true, "a":null}], "10": "ten", "2": "two" }';
    const created = await sendRaw('POST', '/v1/jobs', job('json', '/json', `"body": ${body}`));
    expect(created.target.body).toEqual(JSON.parse(body));
    const received = await delivered(created.id, '/json');
    expect(received.body).toBe(body);
    expect(received.headers['content-type']).toBe('application/json');
  });

  it('is a string as it is, with text/plain; charset=utf-8', async () => {
    const created = await sendRaw('POST', '/v1/jobs', job('text', '/text', '"body": "line one\\n  line two: ünïcödé"'));
    const received = await delivered(created.id, '/text');
    expect(received.body).toBe('line one\n  line two: ünïcödé');
    expect(received.headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  it("goes with the job's own content-type, whatever its spelling", async () => {
    const target = '"headers":{"Content-Type":"application/xml"},"body":"<ping at=\\"now\\"/>"';
    const created = await sendRaw('POST', '/v1/jobs', job('xml', '/xml', target));
    const received = await delivered(created.id, '/xml');
    expect(received.body).toBe('<ping at="now"/>');
    expect(received.headers['content-type']).toBe('application/xml');
  });

  it('is replaced as sent by a merge patch, and kept as it was by a patch of anything else', async () => {
    const created = await sendRaw('POST', '/v1/jobs', job('patched', '/patched', '"body": {"a": 1}'));
    const body = '{"y":  2, "x": 1}';
    await sendRaw('PATCH', `/v1/jobs/${created.id}`, `{"target":{"body":${body}}}`, 'application/merge-patch+json');
    expect((await delivered(created.id, '/patched')).body).toBe(body);
    // Same keys in another order: other bytes, so a change (a new version).
    const reordered = await sendRaw('PATCH', `/v1/jobs/${created.id}`, '{"target":{"body":{"x": 1, "y":  2}}}');
    expect(reordered.version).toBe(3);
    const described = await sendRaw('PATCH', `/v1/jobs/${created.id}`, '{"description":"kept body"}');
    expect(described.version).toBe(4);
    expect((await delivered(created.id, '/patched')).body).toBe('{"x": 1, "y":  2}');
  });
});
