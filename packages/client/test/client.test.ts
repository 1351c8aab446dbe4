/**
 * The client against real api and worker processes on loopback: its generated types match the
 * document the api serves, it reaches every operation, the README's quick start runs as written,
 * 429 and 503 are retried after `Retry-After` with one `Idempotency-Key`, and `verifyCallback`
 * checks real callbacks, through a signing-secret rotation.
 */
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  ROOT,
  createTestDatabase,
  deletePrefix,
  startApi,
  startSink,
  startWorker,
  testBaseUrls,
  testPrefix,
  type FleetEnv,
  type Proc,
  type Sink,
  type TestDatabase,
} from '@tickwork/testkit';
import {
  OPERATIONS,
  TickworkApiError,
  WebhookVerificationError,
  createTickworkClient,
  retryAfterMs,
  verifyCallback,
  type OperationId,
  type TickworkClient,
} from '../src/index.ts';
import { generatedFiles } from '../scripts/codegen.ts';
import { fetchDocument } from '../scripts/served.ts';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc;
let sink: Sink;
let admin: TickworkClient;
let service: { id: string; apiKey: string; signingSecret: string };
let tickwork: TickworkClient;

beforeAll(async () => {
  db = await createTestDatabase('tw_client');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  sink = await startSink();
  [api, worker] = await Promise.all([startApi(env), startWorker(env)]);
  admin = createTickworkClient({ baseUrl: api.url, apiKey: ADMIN_TOKEN });
  const created = await admin.createService({ body: { name: 'client' } });
  service = { id: created.id, apiKey: created.apiKey, signingSecret: created.signingSecret };
  tickwork = createTickworkClient({ baseUrl: api.url, apiKey: service.apiKey });
}, 60_000);
afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

const hourly = (name: string, path = '/hook') => ({
  name,
  schedule: { every: '1h' },
  target: { url: `${sink.url}${path}` },
});

describe('the generated client', () => {
  it('matches the document the api serves (else run `pnpm --filter @tickwork/client generate`)', async () => {
    const served = await generatedFiles(await fetchDocument(api.url));
    for (const [path, text] of Object.entries(served)) {
      const committed = readFileSync(join(ROOT, 'packages/client', path), 'utf8');
      expect(committed, `packages/client/${path} is stale: run pnpm --filter @tickwork/client generate`).toBe(text);
    }
  });

  it('has a method for every operation, and each one reaches the api', async () => {
    const document = await fetchDocument(api.url);
    const served = Object.values(document.paths as Record<string, Record<string, { operationId: string }>>)
      .flatMap((item) => Object.values(item).map((operation) => operation.operationId))
      .sort();
    expect(Object.keys(OPERATIONS).sort()).toEqual(served);

    const called = new Set<OperationId>();
    const use = <T>(id: OperationId, answer: Promise<T>) => {
      called.add(id);
      return answer;
    };
    const ops = tickwork;
    expect((await use('getLiveness', ops.getLiveness())).status).toBe('ok');
    expect((await use('getReadiness', ops.getReadiness())).status).toBe('ok');
    expect(await use('getMetrics', ops.getMetrics())).toContain('# TYPE');

    // The admin operations.
    const other = await use('createService', admin.createService({ body: { name: 'client-all' } }));
    const id = { params: { path: { id: other.id } } };
    expect((await use('getService', admin.getService(id))).name).toBe('client-all');
    const names: string[] = [];
    for await (const s of admin.pages('listServices', { params: { query: { limit: 1 } } })) names.push(s.name);
    called.add('listServices');
    expect(names).toEqual(expect.arrayContaining(['client', 'client-all']));
    await use('updateService', admin.updateService({ ...id, body: { quotas: { maxJobs: 50 } } }));
    const key = await use('createApiKey', admin.createApiKey({ ...id, body: { scopes: ['jobs:read'] } }));
    await use('revokeApiKey', admin.revokeApiKey({ params: { path: { id: other.id, keyId: key.id } } }));
    await use('rotateSigningSecret', admin.rotateSigningSecret(id));
    await use('disableService', admin.disableService(id));
    await use('enableService', admin.enableService(id));

    // A service's own.
    await use('previewSchedule', ops.previewSchedule({ body: { schedule: { every: '1h' }, count: 2 } }));
    // Its callback fails once and for all, so its run can be replayed.
    sink.respond = (r) => ({ status: r.path === '/fails' ? 500 : 200 });
    const job = await use(
      'createJob',
      ops.createJob({
        body: {
          ...hourly('every-route', '/fails'),
          target: { url: `${sink.url}/fails`, headers: { authorization: 'Bearer client-secret' } },
          retry: { maxAttempts: 1 },
        },
      }),
    );
    const jobId = { params: { path: { id: job.id } } };
    expect((await use('getJob', ops.getJob(jobId))).id).toBe(job.id);
    await use('listJobs', ops.listJobs({ params: { query: { limit: 5 } } }));
    await use('updateJob', ops.updateJob({ ...jobId, body: { description: 'patched' } }));
    await use('pauseJob', ops.pauseJob({ ...jobId, body: {} }));
    await use('resumeJob', ops.resumeJob(jobId));
    expect((await use('listJobNextRuns', ops.listJobNextRuns(jobId))).nextRuns.length).toBeGreaterThan(0);
    expect((await use('skipJob', ops.skipJob({ ...jobId, body: { count: 1 } }))).skipUntil).not.toBeNull();
    const versions = await use('listJobVersions', ops.listJobVersions(jobId));
    expect(versions.items.map((entry) => entry.change)).toEqual(['skip', 'resume', 'pause', 'patch', 'create']);
    // A history entry shows the job as a job response does: the secret header redacted.
    for (const entry of versions.items) expect(entry.definition.target.headers).toEqual({ authorization: '***' });
    const run = await use('triggerJob', ops.triggerJob(jobId));
    await sink.waitFor((all) => all.some((r) => r.headers['webhook-id'] === run.id));
    await use('getRun', ops.getRun({ params: { path: { id: run.id } } }));
    await use('listJobRuns', ops.listJobRuns(jobId));
    await use('listRuns', ops.listRuns());
    const finished = await waitForRun(run.id);
    expect(['failed', 'dead']).toContain(finished.status);
    await use('replayRun', ops.replayRun({ params: { path: { id: run.id } } }));
    await use('deleteJob', ops.deleteJob(jobId));

    // Alerts: the list, and one alert (none is open: another id answers the problem, 404).
    expect((await use('listAlerts', ops.listAlerts())).items).toEqual([]);
    const noAlert = await use('getAlert', ops.getAlert({ params: { path: { id: randomUUID() } } })).catch(
      (e: unknown) => e,
    );
    expect(noAlert).toBeInstanceOf(TickworkApiError);
    expect((noAlert as TickworkApiError).status).toBe(404);

    // Exclusion calendars.
    const calendar = await use(
      'createCalendar',
      ops.createCalendar({ body: { name: 'holidays', timezone: 'Europe/Berlin', dates: ['2026-12-25'] } }),
    );
    const calendarId = { params: { path: { id: calendar.id } } };
    expect((await use('getCalendar', ops.getCalendar(calendarId))).name).toBe('holidays');
    await use('listCalendars', ops.listCalendars());
    await use('updateCalendar', ops.updateCalendar({ ...calendarId, body: { dates: ['2026-12-24', '2026-12-25'] } }));
    await use('deleteCalendar', ops.deleteCalendar(calendarId));

    // An operation added to the api (and to the client by `generate`) gets a call above.
    const uncalled = Object.keys(OPERATIONS).filter((op) => !called.has(op as OperationId));
    expect(uncalled, 'operations this test never calls through the client').toEqual([]);
  });

  it('throws the problem of a bad input, naming the field, and of another service’s id (404)', async () => {
    const bad = await tickwork
      .createJob({ body: { ...hourly('bad'), schedule: { every: 'soon' } } })
      .catch((error: unknown) => error);
    expect(bad).toBeInstanceOf(TickworkApiError);
    expect((bad as TickworkApiError).status).toBe(400);
    expect((bad as TickworkApiError).problem?.errors).toEqual([expect.objectContaining({ field: 'schedule.every' })]);
    expect((bad as TickworkApiError).requestId).toBeTruthy();

    const mine = await tickwork.createJob({ body: hourly('mine') });
    const stranger = await admin.createService({ body: { name: 'client-stranger' } });
    const theirs = createTickworkClient({ baseUrl: api.url, apiKey: stranger.apiKey });
    const foreign = await theirs.getJob({ params: { path: { id: mine.id } } }).catch((error: unknown) => error);
    expect((foreign as TickworkApiError).status).toBe(404);
    expect((foreign as TickworkApiError).problem?.type).toBeTruthy();
  });

  it('iterates every page with for await', async () => {
    const names = Array.from({ length: 7 }, (_, i) => `paged-${i}`);
    for (const name of names) await tickwork.createJob({ body: hourly(name) });
    const seen: string[] = [];
    for await (const job of tickwork.pages('listJobs', { params: { query: { limit: 2, name: 'paged-' } } })) {
      seen.push(job.name);
    }
    expect(seen.sort()).toEqual(names);
  });
});

async function waitForRun(id: string) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const run = await tickwork.getRun({ params: { path: { id } } });
    if (run.status !== 'running' && run.status !== 'retrying') return run;
    if (Date.now() > deadline) throw new Error(`run ${id} still ${run.status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Seen {
  at: number;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * An HTTP server in front of the api that answers the first requests with the given faults and
 * forwards the rest, recording what it got.
 */
async function faultyFront(faults: { status: number; retryAfter?: string }[]) {
  const seen: Seen[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', async () => {
      seen.push({ at: Date.now(), method: request.method!, url: request.url!, headers: request.headers });
      const fault = faults.shift();
      if (fault) {
        response.writeHead(fault.status, {
          'content-type': 'application/problem+json',
          ...(fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }),
        });
        response.end(JSON.stringify({ type: 'about:blank', title: 'try later', status: fault.status }));
        return;
      }
      const headers = Object.fromEntries(
        Object.entries(request.headers).filter(([name]) => name !== 'host' && name !== 'content-length'),
      ) as Record<string, string>;
      const forwarded = await fetch(`${api.url}${request.url}`, {
        method: request.method!,
        headers,
        ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
      });
      response.writeHead(forwarded.status, Object.fromEntries(forwarded.headers));
      response.end(Buffer.from(await forwarded.arrayBuffer()));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('retries', () => {
  it('retries 429 and 503 after their Retry-After, with the same Idempotency-Key, and creates one job', async () => {
    const front = await faultyFront([
      { status: 429, retryAfter: '1' },
      { status: 503, retryAfter: new Date(Date.now() + 1_000).toUTCString() },
    ]);
    try {
      const client = createTickworkClient({ baseUrl: front.url, apiKey: service.apiKey });
      const job = await client.createJob({ body: hourly('retried') });
      expect(front.seen).toHaveLength(3);
      const keys = front.seen.map((s) => s.headers['idempotency-key']);
      expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(new Set(keys).size).toBe(1);
      expect(front.seen[1]!.at - front.seen[0]!.at).toBeGreaterThanOrEqual(950);
      const all: string[] = [];
      for await (const j of tickwork.pages('listJobs', { params: { query: { name: 'retried' } } })) all.push(j.id);
      expect(all).toEqual([job.id]);
    } finally {
      await front.close();
    }
  });

  it('keeps an Idempotency-Key the caller gives, and sends none on a read', async () => {
    const front = await faultyFront([]);
    try {
      const client = createTickworkClient({ baseUrl: front.url, apiKey: service.apiKey });
      const body = {
        ...hourly('keyed'),
        target: { ...hourly('keyed').target, headers: { authorization: 'Bearer x' } },
      };
      const init = { body, params: { header: { 'idempotency-key': 'caller-key-1' } } };
      const first = await client.createJob(init);
      const again = await client.createJob(init);
      expect(again.id).toBe(first.id);
      // The stored answer a replay sends again was redacted before it was stored.
      expect(again.target.headers).toEqual({ authorization: '***' });
      await client.getJob({ params: { path: { id: first.id } } });
      expect(front.seen.map((s) => s.headers['idempotency-key'])).toEqual(['caller-key-1', 'caller-key-1', undefined]);
    } finally {
      await front.close();
    }
  });

  it('gives up after maxAttempts, and at once when Retry-After asks for longer than maxDelayMs', async () => {
    const front = await faultyFront([{ status: 503 }, { status: 503 }, { status: 429, retryAfter: '3600' }]);
    try {
      const client = createTickworkClient({
        baseUrl: front.url,
        apiKey: service.apiKey,
        retry: { maxAttempts: 2, baseDelayMs: 10 },
      });
      const failed = await client.getJob({ params: { path: { id: '0' } } }).catch((error: unknown) => error);
      expect((failed as TickworkApiError).status).toBe(503);
      expect(front.seen).toHaveLength(2);
      const started = Date.now();
      const limited = await client.listJobs().catch((error: unknown) => error);
      expect((limited as TickworkApiError).status).toBe(429);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(front.seen).toHaveLength(3);
    } finally {
      await front.close();
    }
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-12-01T12:00:00Z');
    expect(retryAfterMs('2', now)).toBe(2_000);
    expect(retryAfterMs('Tue, 01 Dec 2026 12:00:05 GMT', now)).toBe(5_000);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });
});

describe('verifyCallback', () => {
  async function callback(name: string) {
    const path = `/verify-${name}`;
    const job = await tickwork.createJob({ body: hourly(name, path) });
    await tickwork.triggerJob({ params: { path: { id: job.id } } });
    await sink.waitFor((all) => all.some((r) => r.path === path));
    return sink.received.find((r) => r.path === path)!;
  }

  it('verifies a real callback, and refuses a wrong secret, a changed body and a missing header', async () => {
    const received = await callback('plain');
    const verified = verifyCallback({ secrets: service.signingSecret, headers: received.headers, body: received.body });
    expect(verified.id).toBe(received.headers['webhook-id']);
    expect(verified.secretIndex).toBe(0);
    const wrong = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    expect(() => verifyCallback({ secrets: wrong, headers: received.headers, body: received.body })).toThrow(
      WebhookVerificationError,
    );
    expect(() =>
      verifyCallback({ secrets: service.signingSecret, headers: received.headers, body: `${received.body} ` }),
    ).toThrow(WebhookVerificationError);
    const { 'webhook-signature': _gone, ...unsigned } = received.headers;
    expect(() => verifyCallback({ secrets: service.signingSecret, headers: unsigned, body: received.body })).toThrow(
      WebhookVerificationError,
    );
    // fetch's Headers, as a fetch-style server hands them.
    const headers = new Headers(received.headers as Record<string, string>);
    expect(verifyCallback({ secrets: [service.signingSecret], headers, body: received.body }).id).toBe(verified.id);
  });

  it('verifies under the new and the previous secret during a signing-secret rotation', async () => {
    const rotated = await admin.rotateSigningSecret({ params: { path: { id: service.id } } });
    const received = await callback('rotated');
    expect(String(received.headers['webhook-signature']).split(' ')).toHaveLength(2);
    const input = { headers: received.headers, body: received.body };
    expect(verifyCallback({ ...input, secrets: service.signingSecret }).secretIndex).toBe(0);
    expect(verifyCallback({ ...input, secrets: rotated.signingSecret }).secretIndex).toBe(0);
    const wrong = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
    expect(verifyCallback({ ...input, secrets: [wrong, rotated.signingSecret] }).secretIndex).toBe(1);
    service.signingSecret = rotated.signingSecret;
  });
});

describe('the README quick start', () => {
  it('runs as written against a real api: creates, reads, lists runs, deletes, exits 0', async () => {
    const child = spawn(process.execPath, ['packages/client/examples/quickstart.ts'], {
      cwd: ROOT,
      env: { ...process.env, TICKWORK_URL: api.url, TICKWORK_API_KEY: service.apiKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, output).toBe(0);
    const created = /created (\S+),/.exec(output)?.[1];
    expect(created, output).toBeTruthy();
    expect(output).toContain('authorization shows as ***');
    expect(output).toContain(`deleted ${created}`);
    const gone = await tickwork.getJob({ params: { path: { id: created! } } }).catch((error: unknown) => error);
    expect((gone as TickworkApiError).status).toBe(404);
  });

  it('says what it needs without TICKWORK_URL and TICKWORK_API_KEY', async () => {
    const child = spawn(process.execPath, ['packages/client/examples/quickstart.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stderr.on('data', (d: Buffer) => (output += d));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(output).toContain('TICKWORK_URL');
  });
});
