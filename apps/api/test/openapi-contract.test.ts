/**
 * The served OpenAPI document tells the truth. Every documented operation is called over real HTTP
 * on loopback, for its success and for each error it documents, and every answer (status,
 * content-type, headers, body) is checked against the document with a validator we did not write
 * (./openapi-contract.ts: swagger-parser and Ajv). It fails when an answer's status is not
 * documented, when a documented status is never answered, when a route is not in the document, and
 * when a component is not used. Errors that reach no handler come from instances of their own: a
 * rate limit of one request a minute (429), and Postgres cut off behind a TCP proxy (503).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { uuidv7 } from '@tickwork/core';
import { recordOccurrence } from '@tickwork/db';
import { startTcpProxy, type TcpProxy } from '@tickwork/testkit';
import { BODY_LIMIT, buildServer } from '../src/build.ts';
import { ADMIN_TOKEN, anotherInstance, startTestApi, testServerConfig, type TestApi } from './helpers.ts';
import { Contract, METHODS, type Answer, type Document, type Operation } from './openapi-contract.ts';

/** Statuses documented for every operation that no test can provoke on demand. */
const NOT_PROVOKED: Record<number, string> = {
  408: 'the request must take 30 s to arrive',
  500: 'a fault of our own',
};

type App = Awaited<ReturnType<typeof buildServer>>;
let api: TestApi;
let limited: App;
let cutOff: App;
let proxy: TcpProxy;
const base: Record<'main' | 'limited' | 'cutOff', string> = { main: '', limited: '', cutOff: '' };
let contract: Contract;
let owner: { id: string; apiKey: string };
let limitedKey: string;
const ids = { job: '', completed: '', run: '', service: '', key: '', calendar: '', alert: '' };

interface Call {
  method: string;
  url: string;
  /** The Authorization header: by default the credential the path takes; null for none. */
  auth?: string | null;
  headers?: Record<string, string>;
  json?: unknown;
  raw?: { contentType: string; body: string };
  via?: keyof typeof base;
}

function credentialFor(url: string): string | null {
  if (url.startsWith('/v1/admin/')) return `Bearer ${ADMIN_TOKEN}`;
  return url.startsWith('/v1/') ? `Bearer ${owner.apiKey}` : null;
}

async function send(call: Call): Promise<Answer> {
  const auth = call.auth === undefined ? credentialFor(call.url) : call.auth;
  const body = call.raw ? call.raw.body : call.json === undefined ? undefined : JSON.stringify(call.json);
  const contentType = call.raw ? call.raw.contentType : call.json === undefined ? undefined : 'application/json';
  const response = await request(`${base[call.via ?? 'main']}${call.url}`, {
    method: call.method as 'GET',
    headers: {
      ...(auth ? { authorization: auth } : {}),
      ...(contentType ? { 'content-type': contentType } : {}),
      ...call.headers,
    },
    body,
  });
  return {
    method: call.method,
    url: call.url,
    status: response.statusCode,
    headers: response.headers,
    body: await response.body.text(),
  };
}

/** Sends `call`, expects `status`, and returns the answer after checking it against the document. */
async function expectAnswer(call: Call, status: number): Promise<Answer> {
  const answer = await send(call);
  expect(answer.status, `${call.method} ${call.url} (${call.via ?? 'main'}): ${answer.body}`).toBe(status);
  expect(contract.problemsOf(answer)).toEqual([]);
  return answer;
}

const aJob = (name: string) => ({ name, schedule: { every: '1h' }, target: { url: 'https://example.com/hook' } });

async function created(call: Call): Promise<{ id: string }> {
  return JSON.parse((await expectAnswer(call, 201)).body);
}

beforeAll(async () => {
  api = await startTestApi();
  base.main = await api.app.listen({ host: '127.0.0.1', port: 0 });
  const served = await request(`${base.main}/openapi.json`);
  contract = await Contract.of((await served.body.json()) as Document);

  owner = await api.newService('contract');
  ids.service = owner.id;
  limitedKey = (await api.newService('contract-limited')).apiKey;
  limited = await anotherInstance(api, { rateLimitPerMinute: 1 });
  base.limited = await limited.listen({ host: '127.0.0.1', port: 0 });
  const target = new URL(api.db.url);
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  cutOff = await buildServer(testServerConfig(proxy.urlThrough(api.db.url), api.redisUrl, api.prefix));
  base.cutOff = await cutOff.listen({ host: '127.0.0.1', port: 0 });
  await proxy.cut();

  const auth = `Bearer ${owner.apiKey}`;
  ids.job = (
    await api.app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: auth }, payload: aJob('active') })
  ).json().id;
  // A window that holds no occurrence: completed at once.
  const completed = await api.app.inject({
    method: 'POST',
    url: '/v1/jobs',
    headers: { authorization: auth },
    payload: {
      ...aJob('completed'),
      schedule: { cron: '0 0 1 1 *' },
      endAt: new Date(Date.now() + 60_000).toISOString(),
    },
  });
  expect(completed.json().state).toBe('completed');
  ids.completed = completed.json().id;
  const { run } = await recordOccurrence(api.db.db, {
    id: uuidv7(),
    jobId: ids.job,
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
  ids.run = run.id;
  ids.alert = uuidv7();
  await api.db.db
    .insertInto('alerts')
    .values({ id: ids.alert, service_id: owner.id, job_id: ids.job, scheduled_for: run.scheduled_for, reason: 'dead' })
    .execute();
  const key = await api.app.inject({
    method: 'POST',
    url: `/v1/admin/services/${owner.id}/keys`,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    payload: {},
  });
  ids.key = key.json().id;
  ids.calendar = (
    await api.app.inject({
      method: 'POST',
      url: '/v1/calendars',
      headers: { authorization: auth },
      payload: { name: 'contract-holidays', dates: ['2030-12-25'] },
    })
  ).json().id;
});
afterAll(async () => {
  await cutOff?.close();
  await proxy?.close();
  await limited?.close();
  await api?.close();
});

/** The path of `template` with each parameter filled: by the given value, else by an id of what it names. */
function fill(template: string, value?: string): string {
  return template.replace(/\{(\w+)\}/g, (_match, name: string) => {
    if (value !== undefined) return value;
    if (name === 'keyId') return ids.key;
    if (template.startsWith('/v1/jobs/')) return ids.job;
    if (template.startsWith('/v1/runs/')) return ids.run;
    if (template.startsWith('/v1/calendars/')) return ids.calendar;
    if (template.startsWith('/v1/alerts/')) return ids.alert;
    return ids.service;
  });
}

const exampleOf = (operationId: string): unknown => {
  const found = contract.operations().find((o) => o.operation.operationId === operationId);
  return found?.operation.requestBody?.content['application/json']?.example;
};

/** Each operation's successes, and the errors only its own state can cause (409, 412, 422), in order. */
const OWN_CASES: Record<string, () => Promise<void>> = {
  async createJob() {
    // Swagger UI's "Try it out" body, as the document gives it.
    await expectAnswer({ method: 'POST', url: '/v1/jobs', json: exampleOf('createJob') }, 201);
    const headers = { 'idempotency-key': `contract-${uuidv7()}` };
    await expectAnswer({ method: 'POST', url: '/v1/jobs', headers, json: aJob('idempotent') }, 201);
    const replayed = await expectAnswer({ method: 'POST', url: '/v1/jobs', headers, json: aJob('idempotent') }, 201);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    await expectAnswer({ method: 'POST', url: '/v1/jobs', headers, json: aJob('another') }, 422);
    await expectAnswer({ method: 'POST', url: '/v1/jobs', json: aJob('active') }, 409);
  },
  async listJobs() {
    await expectAnswer({ method: 'GET', url: '/v1/jobs?limit=2&label=team:billing&label=tier:gold' }, 200);
    await expectAnswer({ method: 'HEAD', url: '/v1/jobs' }, 200);
  },
  async getJob() {
    await expectAnswer({ method: 'GET', url: `/v1/jobs/${ids.job}` }, 200);
  },
  async updateJob() {
    const url = `/v1/jobs/${ids.job}`;
    const patch = { contentType: 'application/merge-patch+json', body: JSON.stringify({ description: 'patched' }) };
    await expectAnswer({ method: 'PATCH', url, raw: patch }, 200);
    await expectAnswer({ method: 'PATCH', url, json: { labels: { team: 'billing' } } }, 200);
    await expectAnswer({ method: 'PATCH', url, headers: { 'if-match': 'W/"999"' }, json: { maxRuns: 3 } }, 412);
    await expectAnswer({ method: 'PATCH', url, json: { name: 'completed' } }, 409);
  },
  async deleteJob() {
    const job = await created({ method: 'POST', url: '/v1/jobs', json: aJob('doomed') });
    await expectAnswer({ method: 'DELETE', url: `/v1/jobs/${job.id}` }, 204);
  },
  async pauseJob() {
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.job}/pause` }, 200);
    const until = new Date(Date.now() + 3_600_000).toISOString();
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.job}/pause`, json: { until } }, 200);
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.job}/pause`, json: {} }, 200);
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.completed}/pause` }, 409);
  },
  async resumeJob() {
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.job}/resume` }, 200);
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.completed}/resume` }, 409);
  },
  async skipJob() {
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.job}/skip`, json: exampleOf('skipJob') }, 200);
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.job}/skip`, json: { count: 0 } }, 200);
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.completed}/skip`, json: { count: 1 } }, 409);
  },
  async listJobVersions() {
    await expectAnswer({ method: 'GET', url: `/v1/jobs/${ids.job}/versions?limit=2` }, 200);
  },
  async triggerJob() {
    await expectAnswer({ method: 'POST', url: `/v1/jobs/${ids.job}/trigger` }, 202);
  },
  async listJobNextRuns() {
    await expectAnswer({ method: 'GET', url: `/v1/jobs/${ids.job}/next-runs?count=3` }, 200);
    await expectAnswer({ method: 'GET', url: `/v1/jobs/${ids.job}/next-runs?count=3&includeExcluded=true` }, 200);
  },
  async listJobRuns() {
    await expectAnswer({ method: 'GET', url: `/v1/jobs/${ids.job}/runs?status=dead` }, 200);
  },
  async listRuns() {
    await expectAnswer({ method: 'GET', url: '/v1/runs?status=dead&limit=5' }, 200);
  },
  async getRun() {
    await expectAnswer({ method: 'GET', url: `/v1/runs/${ids.run}` }, 200);
  },
  async replayRun() {
    const replay = JSON.parse((await expectAnswer({ method: 'POST', url: `/v1/runs/${ids.run}/replay` }, 202)).body);
    await expectAnswer({ method: 'POST', url: `/v1/runs/${replay.id}/replay` }, 409);
  },
  async listAlerts() {
    await expectAnswer({ method: 'GET', url: `/v1/alerts?state=open&jobId=${ids.job}&limit=5` }, 200);
  },
  async getAlert() {
    await expectAnswer({ method: 'GET', url: `/v1/alerts/${ids.alert}` }, 200);
  },
  async previewSchedule() {
    await expectAnswer({ method: 'POST', url: '/v1/schedules/preview', json: exampleOf('previewSchedule') }, 200);
    const json = { schedule: { every: '1d' }, calendars: [ids.calendar], includeExcluded: true };
    await expectAnswer({ method: 'POST', url: '/v1/schedules/preview', json }, 200);
  },
  async createCalendar() {
    await expectAnswer({ method: 'POST', url: '/v1/calendars', json: exampleOf('createCalendar') }, 201);
    await expectAnswer({ method: 'POST', url: '/v1/calendars', json: exampleOf('createCalendar') }, 409);
  },
  async listCalendars() {
    await expectAnswer({ method: 'GET', url: '/v1/calendars?limit=1' }, 200);
  },
  async getCalendar() {
    await expectAnswer({ method: 'GET', url: `/v1/calendars/${ids.calendar}` }, 200);
  },
  async updateCalendar() {
    const url = `/v1/calendars/${ids.calendar}`;
    await expectAnswer({ method: 'PATCH', url, json: { ranges: [{ from: '2030-12-31', to: '2031-01-01' }] } }, 200);
    await created({ method: 'POST', url: '/v1/calendars', json: { name: 'contract-taken' } });
    await expectAnswer({ method: 'PATCH', url, json: { name: 'contract-taken' } }, 409);
  },
  async deleteCalendar() {
    const doomed = await created({ method: 'POST', url: '/v1/calendars', json: { name: 'contract-doomed' } });
    await expectAnswer({ method: 'DELETE', url: `/v1/calendars/${doomed.id}` }, 204);
    const used = await created({ method: 'POST', url: '/v1/calendars', json: { name: 'contract-used' } });
    await created({ method: 'POST', url: '/v1/jobs', json: { ...aJob('with-calendar'), calendars: [used.id] } });
    await expectAnswer({ method: 'DELETE', url: `/v1/calendars/${used.id}` }, 409);
  },
  async createService() {
    await expectAnswer({ method: 'POST', url: '/v1/admin/services', json: { name: 'contract-new' } }, 201);
    await expectAnswer({ method: 'POST', url: '/v1/admin/services', json: { name: 'contract-new' } }, 409);
  },
  async listServices() {
    await expectAnswer({ method: 'GET', url: '/v1/admin/services?limit=1' }, 200);
  },
  async getService() {
    await expectAnswer({ method: 'GET', url: `/v1/admin/services/${ids.service}` }, 200);
  },
  async updateService() {
    const url = `/v1/admin/services/${ids.service}`;
    await expectAnswer({ method: 'PATCH', url, json: { quotas: { maxJobs: 500 } } }, 200);
    await expectAnswer({ method: 'PATCH', url, json: { alertWebhookUrl: 'https://example.com/alerts' } }, 200);
  },
  async createApiKey() {
    const url = `/v1/admin/services/${ids.service}/keys`;
    await expectAnswer({ method: 'POST', url, json: { scopes: ['jobs:read'] } }, 201);
  },
  async revokeApiKey() {
    const key = await created({ method: 'POST', url: `/v1/admin/services/${ids.service}/keys`, json: {} });
    await expectAnswer({ method: 'DELETE', url: `/v1/admin/services/${ids.service}/keys/${key.id}` }, 204);
  },
  async disableService() {
    const spare = await created({ method: 'POST', url: '/v1/admin/services', json: { name: 'contract-spare' } });
    await expectAnswer({ method: 'POST', url: `/v1/admin/services/${spare.id}/disable` }, 200);
    await expectAnswer({ method: 'POST', url: `/v1/admin/services/${spare.id}/enable` }, 200);
  },
  async enableService() {
    await expectAnswer({ method: 'POST', url: `/v1/admin/services/${ids.service}/enable` }, 200);
  },
  async rotateSigningSecret() {
    await expectAnswer({ method: 'POST', url: `/v1/admin/services/${ids.service}/signing-secret/rotate` }, 200);
  },
  async getLiveness() {
    await expectAnswer({ method: 'GET', url: '/health/live' }, 200);
  },
  async getReadiness() {
    await expectAnswer({ method: 'GET', url: '/health/ready' }, 200);
    await expectAnswer({ method: 'GET', url: '/health/ready', via: 'cutOff' }, 503);
  },
  async getMetrics() {
    await expectAnswer({ method: 'GET', url: '/metrics' }, 200);
  },
};

/**
 * A valid body for an operation that takes one (its example, else `{}` where that is one), so that
 * a call gets as far as its handler: to find no such id, or no database.
 */
const BODY_OF: Record<string, unknown> = { updateService: { quotas: {} }, createService: { name: 'contract-cut-off' } };
const validBody = (operationId: string) => exampleOf(operationId) ?? BODY_OF[operationId] ?? {};

/** The errors any operation of its kind answers before its handler runs, called on the operation. */
async function sharedErrors(path: string, method: string, operation: Operation) {
  const verb = method.toUpperCase();
  const url = fill(path);
  const documented = new Set(Object.keys(operation.responses).map(Number));
  const takesBody = method === 'post' || method === 'put' || method === 'patch';
  const pathParams = (operation.parameters ?? []).some((p) => p.in === 'path');
  const credential = operation.security[0] ? Object.keys(operation.security[0])[0] : undefined;

  const big = { 'x-padding': 'x'.repeat(17 * 1024) };
  await expectAnswer({ method: verb, url, headers: big }, 431);
  if (credential !== undefined) {
    await expectAnswer({ method: verb, url, auth: null }, 401);
    const wrong = credential === 'adminToken' ? `Bearer ${owner.apiKey}` : `Bearer ${ADMIN_TOKEN}`;
    await expectAnswer({ method: verb, url, auth: wrong }, 403);
    await expectAnswer(
      { method: verb, url, via: 'cutOff', ...(takesBody ? { json: validBody(operation.operationId) } : {}) },
      503,
    );
  }
  if (credential === 'apiKey') {
    await send({ method: 'GET', url: '/v1/jobs', auth: `Bearer ${limitedKey}`, via: 'limited' });
    await expectAnswer({ method: verb, url, auth: `Bearer ${limitedKey}`, via: 'limited' }, 429);
  }
  if (documented.has(400)) {
    const bad = pathParams
      ? { method: verb, url: fill(path, 'not-a-uuid') }
      : takesBody
        ? { method: verb, url, raw: { contentType: 'application/json', body: '{"no-such-field":1}' } }
        : { method: verb, url: `${url}?no-such-parameter=1` };
    await expectAnswer(bad, 400);
  }
  if (pathParams) {
    const body = takesBody ? { json: validBody(operation.operationId) } : {};
    await expectAnswer({ method: verb, url: fill(path, uuidv7()), ...body }, 404);
  }
  if (takesBody) {
    const large = `{"name":"${'x'.repeat(BODY_LIMIT)}"}`;
    await expectAnswer({ method: verb, url, raw: { contentType: 'application/json', body: large } }, 413);
    await expectAnswer({ method: verb, url, raw: { contentType: 'text/plain', body: 'name=x' } }, 415);
  }
}

describe('the served OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document with an operationId and security on every operation', () => {
    const operations = contract.operations();
    expect(operations.length).toBeGreaterThan(25);
    for (const { path, method, operation } of operations) {
      expect(operation.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z]+$/);
      expect(operation.security, `${method} ${path}`).toBeDefined();
    }
    expect(new Set(operations.map((o) => o.operation.operationId)).size).toBe(operations.length);
  });

  it('documents every route the api has, and no other', () => {
    const undocumentedByDesign = (url: string) =>
      url === '/openapi.json' || url === '/docs' || url.startsWith('/docs/') || url.startsWith('/admin/queues');
    const routes = api.app.routeTable
      .filter((r) => r.method !== 'HEAD' && !undocumentedByDesign(r.url))
      .map((r) => `${r.method.toLowerCase()} ${r.url.replace(/:(\w+)/g, '{$1}')}`);
    const documented = contract.operations().map((o) => `${o.method} ${o.path}`);
    expect(documented.sort()).toEqual([...new Set(routes)].sort());
  });

  it('uses every component it defines (but MethodNotAllowed, which no operation can answer)', () => {
    const text = JSON.stringify(contract.served.paths) + JSON.stringify(contract.served.components);
    const components = contract.served.components as unknown as Record<string, Record<string, unknown>>;
    const unused = ['schemas', 'responses', 'headers'].flatMap((kind) =>
      Object.keys(components[kind] ?? {})
        .filter((name) => !text.includes(`"#/components/${kind}/${name}"`))
        .map((name) => `${kind}/${name}`),
    );
    expect(unused).toEqual(['responses/MethodNotAllowed']);
  });

  it('describes every real answer of every operation, and every status it documents is answered', async () => {
    const operations = contract.operations();
    expect(Object.keys(OWN_CASES).sort()).toEqual(operations.map((o) => o.operation.operationId).sort());
    for (const { operation } of operations) await OWN_CASES[operation.operationId]!();
    for (const { path, method, operation } of operations) await sharedErrors(path, method, operation);

    const neverAnswered = operations.flatMap(({ operation }) =>
      Object.keys(operation.responses)
        .filter(
          (status) => !contract.seen.has(`${operation.operationId} ${status}`) && !(Number(status) in NOT_PROVOKED),
        )
        .map((status) => `${operation.operationId} ${status}`),
    );
    expect(neverAnswered).toEqual([]);
  });

  it('answers a method a documented path does not take with 405 and the Allow the document implies', async () => {
    for (const [path, item] of Object.entries(contract.resolved.paths)) {
      const absent = METHODS.find((m) => m !== 'head' && m !== 'options' && m !== 'trace' && !(m in item))!;
      await expectAnswer({ method: absent.toUpperCase(), url: fill(path) }, 405);
    }
  });
});
