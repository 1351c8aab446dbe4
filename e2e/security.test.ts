/**
 * Security with real processes: callbacks verified by the reference Standard Webhooks library
 * (and through a signing-secret rotation), the outbound guard at create (api) and at connect time
 * (worker, including a name whose DNS answer is loopback), and a disabled service's jobs going
 * quiet and coming back on enable. The fleet runs as in production: CALLBACK_ALLOW_PRIVATE=false,
 * with only the test sink's host:port allow-listed.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  ADMIN_TOKEN,
  ROOT,
  call,
  startApi,
  startWorker,
  type FleetEnv,
  type Proc,
  eventually,
  startSink,
  type Received,
  type Sink,
  deletePrefix,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let lenientApi: Proc;
let worker: Proc;
let sink: Sink;
let trap: Server;
let trapPort: number;
const trapped: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_sec');
  sink = await startSink();
  trap = createServer((req, res) => {
    trapped.push(`${req.method} ${req.headers.host}${req.url}`);
    res.end('trapped');
  });
  await new Promise<void>((resolve) => trap.listen(0, '::', resolve));
  trapPort = (trap.address() as AddressInfo).port;
  env = {
    DATABASE_URL: db.url,
    REDIS_URL: testBaseUrls().redisUrl,
    BULLMQ_PREFIX: testPrefix(),
    CALLBACK_ALLOW_PRIVATE: 'false',
    CALLBACK_ALLOWED_HOSTS: new URL(sink.url).host,
  };
  [api, lenientApi, worker] = await Promise.all([
    startApi(env),
    // Stands for jobs made before the operator tightened the policy: the worker must still refuse them.
    startApi({ ...env, CALLBACK_ALLOW_PRIVATE: 'true' }),
    startWorker({
      ...env,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${ROOT}e2e/fixtures/fake-dns.ts`.trim(),
      TEST_DNS_OVERRIDES: 'rebind.tickwork.test=127.0.0.1,rebind6.tickwork.test=::1',
    }),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([api?.stop(), lenientApi?.stop(), worker?.stop()]);
  await sink?.close();
  trap?.closeAllConnections();
  await new Promise((r) => trap?.close(r));
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

function headersOf(received: Received): Record<string, string> {
  return Object.fromEntries(
    Object.entries(received.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]),
  );
}

async function newService(name: string) {
  const response = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name } });
  expect(response.status).toBe(201);
  return response.body as { id: string; apiKey: string; signingSecret: string };
}

describe('signed callbacks', () => {
  it('verify with the standardwebhooks library, and carry both signatures after a rotation', async () => {
    const service = await newService('signed');
    const created = await call(api, 'POST', '/v1/jobs', {
      token: service.apiKey,
      body: {
        name: 'signed',
        schedule: { every: '1s' },
        target: { url: `${sink.url}/signed`, body: { hello: 'signed' } },
      },
    });
    expect(created.status).toBe(201);
    const mine = (r: Received[]) => r.filter((x) => x.path === '/signed');
    await sink.waitFor((r) => mine(r).length >= 2, 20_000, 'two signed callbacks');

    const before = new Webhook(service.signingSecret);
    for (const callback of mine(sink.received)) {
      const headers = headersOf(callback);
      expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
      expect(before.verify(callback.body, headers)).toEqual({ hello: 'signed' });
      expect(() => before.verify(callback.body.replace('signed', 'forged'), headers)).toThrow();
      expect(() =>
        new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(callback.body, headers),
      ).toThrow();
    }
    // webhook-id is the run id.
    const first = headersOf(mine(sink.received)[0]!);
    expect((await call(api, 'GET', `/v1/runs/${first['webhook-id']}`, { token: service.apiKey })).status).toBe(200);

    const rotated = await call(api, 'POST', `/v1/admin/services/${service.id}/signing-secret/rotate`, {
      token: ADMIN_TOKEN,
    });
    expect(rotated.status).toBe(200);
    const after = new Webhook(rotated.body.signingSecret);
    const dual = (r: Received[]) => mine(r).filter((x) => String(x.headers['webhook-signature']).includes(' '));
    await sink.waitFor((r) => dual(r).length >= 1, 20_000, 'a callback signed with both secrets');
    const callback = dual(sink.received)[0]!;
    const headers = headersOf(callback);
    expect(headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(after.verify(callback.body, headers)).toEqual({ hello: 'signed' });
    expect(before.verify(callback.body, headers)).toEqual({ hello: 'signed' });
    // A callback from before the rotation does not verify under the new secret alone.
    const old = mine(sink.received)[0]!;
    expect(() => after.verify(old.body, headersOf(old))).toThrow();

    expect((await call(api, 'DELETE', `/v1/jobs/${created.body.id}`, { token: service.apiKey })).status).toBe(204);
  });
});

describe('outbound guard with real processes', () => {
  const spellings = () => [
    `http://127.0.0.1:${trapPort}/`,
    `http://2130706433:${trapPort}/`,
    `http://0x7f000001:${trapPort}/`,
    `http://127.1:${trapPort}/`,
    `http://0177.0.0.1:${trapPort}/`,
    `http://0:${trapPort}/`,
    `http://[::1]:${trapPort}/`,
    `http://[::ffff:127.0.0.1]:${trapPort}/`,
    `http://[::ffff:7f00:1]:${trapPort}/`,
    `http://localhost:${trapPort}/`,
    `http://localhost.:${trapPort}/`,
    `http://169.254.169.254:${trapPort}/latest/meta-data/`,
    `http://10.0.0.1:${trapPort}/`,
    `http://[fe80::1]:${trapPort}/`,
    `http://user:pw@example.com/`,
    `ftp://example.com/`,
  ];

  it('refuses a plainly bad target at create with 400 naming target.url, and writes nothing', async () => {
    const service = await newService('ssrf-create');
    for (const url of spellings()) {
      const response = await call(api, 'POST', '/v1/jobs', {
        token: service.apiKey,
        body: { name: `bad-${Math.random().toString(36).slice(2, 8)}`, schedule: { every: '1m' }, target: { url } },
      });
      expect(response.status, url).toBe(400);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(
        response.body.errors.map((e: { field: string }) => e.field),
        url,
      ).toContain('target.url');
    }
    const list = await call(api, 'GET', '/v1/jobs', { token: service.apiKey });
    expect(list.body.items).toEqual([]);
  });

  it('refuses at connect time: the run fails "destination not allowed", not retried; trap gets nothing', async () => {
    const service = await newService('ssrf-connect');
    const at = new Date(Date.now() + 2_000).toISOString();
    const jobIds: string[] = [];
    // Literal spellings could only have been stored under a laxer policy: made through that api.
    for (const url of [
      `http://127.0.0.1:${trapPort}/`,
      `http://2130706433:${trapPort}/`,
      `http://[::1]:${trapPort}/`,
      `http://localhost:${trapPort}/`,
    ]) {
      const created = await call(lenientApi, 'POST', '/v1/jobs', {
        token: service.apiKey,
        body: { name: `lax-${jobIds.length}`, schedule: { at }, target: { url } },
      });
      expect(created.status, url).toBe(201);
      jobIds.push(created.body.id);
    }
    // Names pass the api (it does not resolve them); their DNS answer is loopback at the worker.
    for (const host of ['rebind.tickwork.test', 'rebind6.tickwork.test']) {
      const created = await call(api, 'POST', '/v1/jobs', {
        token: service.apiKey,
        body: { name: host, schedule: { at }, target: { url: `http://${host}:${trapPort}/` } },
      });
      expect(created.status).toBe(201);
      jobIds.push(created.body.id);
    }
    for (const jobId of jobIds) {
      const run = await eventually(
        async () => {
          const page = await call(api, 'GET', `/v1/jobs/${jobId}/runs`, { token: service.apiKey });
          const found = page.body.items[0];
          return found && found.status !== 'running' && found.status !== 'retrying' ? found : undefined;
        },
        30_000,
        `the run of ${jobId} to end`,
      );
      expect(run).toMatchObject({ status: 'failed', attempts: 1, error: 'destination not allowed', httpStatus: null });
    }
    expect(trapped).toEqual([]);
  });
});

describe('disable and enable', () => {
  it("stops a disabled service's jobs and keys on every api instance, and brings them back on enable", async () => {
    const service = await newService('switch');
    const created = await call(api, 'POST', '/v1/jobs', {
      token: service.apiKey,
      body: { name: 'switch', schedule: { every: '1s' }, target: { url: `${sink.url}/switch` } },
    });
    expect(created.status).toBe(201);
    const count = () => sink.received.filter((x) => x.path === '/switch').length;
    await sink.waitFor(() => count() >= 1, 20_000, 'a first callback');

    const disabled = await call(api, 'POST', `/v1/admin/services/${service.id}/disable`, { token: ADMIN_TOKEN });
    expect(disabled.status).toBe(200);
    const settled = count();
    for (const instance of [api, lenientApi]) {
      expect((await call(instance, 'GET', '/v1/jobs', { token: service.apiKey })).status).toBe(401);
    }
    // One occurrence already being delivered may still land; after it, nothing for several periods.
    await expect(sink.waitFor(() => count() > settled + 1, 4_000, 'a callback after disable')).rejects.toThrow(
      /timed out/,
    );

    const enabled = await call(lenientApi, 'POST', `/v1/admin/services/${service.id}/enable`, { token: ADMIN_TOKEN });
    expect(enabled.status).toBe(200);
    const resumedFrom = count();
    await sink.waitFor(() => count() >= resumedFrom + 2, 20_000, 'callbacks after enable');
    expect((await call(api, 'GET', '/v1/jobs', { token: service.apiKey })).status).toBe(200);
    expect((await call(api, 'DELETE', `/v1/jobs/${created.body.id}`, { token: service.apiKey })).status).toBe(204);
  });
});
