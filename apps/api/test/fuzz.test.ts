/**
 * Fuzzing the write routes with fast-check: at least 10,000 generated bodies and headers (raw
 * JSON, arbitrary values, valid jobs with one field replaced or one field added, garbage text,
 * odd content types, idempotency keys, If-Match, request ids). Never a 5xx; and afterwards the
 * store is whole: every job row has exactly the BullMQ registration its state calls for, no
 * registration belongs to a job that is not there, and every 201 left exactly one row.
 *
 * The routes fuzzed are those of FUZZED present in the route table: a write route is covered by
 * adding it there (PATCH /v1/jobs/:id joins as soon as it exists).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { registrationOf } from '@tickwork/queue';
import { jobFromRow } from '@tickwork/db';
import { ADMIN_TOKEN, SECRET_KEY, startTestApi, type TestApi } from './helpers.ts';

const FUZZED = [
  { method: 'POST', url: '/v1/jobs' },
  { method: 'PATCH', url: '/v1/jobs/:id' },
] as const;
const RUNS = 10_000;

let api: TestApi;
let queue: Queue;
let service: { id: string; apiKey: string };
const seedJobIds: string[] = [];

const validJob = (name: string) => ({
  name,
  description: 'fuzz',
  labels: { team: 'fuzz' },
  schedule: { every: '1h' },
  target: { url: 'https://example.com/hook', method: 'POST', headers: { 'x-a': 'b' }, body: { n: 1 }, timeoutMs: 5000 },
  retry: { maxAttempts: 2, backoff: { type: 'fixed', delayMs: 1000 } },
  misfire: { policy: 'skip', graceMs: 1000 },
  overlap: 'skip',
  jitterMs: 10,
});

const PATHS = [
  ['name'],
  ['description'],
  ['labels'],
  ['schedule'],
  ['schedule', 'every'],
  ['schedule', 'cron'],
  ['schedule', 'timezone'],
  ['schedule', 'at'],
  ['schedule', 'everyMs'],
  ['target'],
  ['target', 'url'],
  ['target', 'method'],
  ['target', 'headers'],
  ['target', 'body'],
  ['target', 'timeoutMs'],
  ['retry'],
  ['retry', 'backoff', 'delayMs'],
  ['misfire', 'policy'],
  ['startAt'],
  ['endAt'],
  ['maxRuns'],
  ['jitterMs'],
  ['overlap'],
  ['paused'],
];

/** Values that have broken parsers, validators and databases before. */
const nasty = fc.constantFrom<unknown>(
  null,
  '',
  ' ',
  '\u0000',
  '\ud800',
  'ä'.repeat(300),
  '💥',
  -1,
  0,
  1e308,
  -0,
  2 ** 53 + 1,
  1.5,
  true,
  [],
  {},
  [null],
  '2026-02-30T00:00:00Z',
  '9999-12-31T23:59:59Z',
  '0000-01-01T00:00:00Z',
  '* * * * * * *',
  '0 0 31 2 *',
  '@reboot',
  '1ms',
  '0s',
  '99999999999d',
  'Etc/GMT+14',
  '../../etc/passwd',
  'http://127.0.0.1:6379/',
  'http://[::1]/',
  'http://2130706433/',
  'http://localhost/',
  'file:///etc/passwd',
  'javascript:alert(1)',
  'https://user:pw@example.com/',
  "'; DROP TABLE jobs; --",
  { $gt: '' },
  { __proto__: { admin: true } },
  { constructor: { prototype: { polluted: true } } },
  'x'.repeat(5000),
);

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): Record<string, unknown> {
  const copy = structuredClone(target);
  let node: Record<string, unknown> = copy;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = value;
  return copy;
}

const body = fc.oneof(
  { arbitrary: fc.json(), weight: 2 },
  { arbitrary: fc.anything().map((v) => JSON.stringify(v) ?? ''), weight: 2 },
  {
    arbitrary: fc
      .tuple(fc.string({ maxLength: 12 }), fc.constantFrom(...PATHS), fc.oneof(nasty, fc.anything()))
      .map(([name, path, value]) => JSON.stringify(setPath(validJob(`f-${name}`), path, value))),
    weight: 5,
  },
  {
    arbitrary: fc
      .tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 20 }), fc.anything())
      .map(([name, key, value]) => JSON.stringify({ ...validJob(`g-${name}`), [key]: value })),
    weight: 2,
  },
  { arbitrary: fc.uuid().map((u) => JSON.stringify(validJob(`ok-${u}`))), weight: 2 },
  { arbitrary: fc.string({ maxLength: 200 }), weight: 1 },
);

const headerValue = fc.string({ maxLength: 80 }).filter((s) => !/[\r\n\0]/.test(s) && /^[\x20-\x7e]*$/.test(s));
const headers = fc.record(
  {
    'content-type': fc.oneof(
      {
        arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON'),
        weight: 7,
      },
      {
        arbitrary: fc.constantFrom(
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/json; charset=latin1',
          'application/merge-patch+json',
          '*/*',
          ';',
        ),
        weight: 3,
      },
    ),
    'idempotency-key': headerValue,
    'if-match': fc.oneof(fc.constant('W/"1"'), fc.constant('*'), headerValue),
    'x-request-id': headerValue,
    accept: fc.constantFrom('application/json', 'application/problem+json', 'text/html', '*/*'),
  },
  { requiredKeys: ['content-type'] },
);

beforeAll(async () => {
  api = await startTestApi({ callbackAllowPrivate: false, rateLimitPerMinute: 10_000_000 });
  queue = new Queue('fire', {
    connection: new Redis(api.redisUrl, { maxRetriesPerRequest: null }),
    prefix: api.prefix,
  });
  const created = await api.app.inject({
    method: 'POST',
    url: '/v1/admin/services',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    payload: { name: 'fuzz', quotas: { maxJobs: 1_000_000 } },
  });
  service = created.json();
  for (let i = 0; i < 5; i++) {
    const seeded = await api.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${service.apiKey}` },
      payload: validJob(`seed-${i}`),
    });
    seedJobIds.push(seeded.json().id);
  }
});
afterAll(async () => {
  await queue?.close();
  await api?.close();
});

describe('fuzzing the write routes', () => {
  it(`never answers 5xx to ${RUNS} generated requests, and leaves no partial write`, { timeout: 600_000 }, async () => {
    const present = FUZZED.filter((f) => api.app.routeTable.some((r) => r.method === f.method && r.url === f.url));
    expect(present.map((f) => f.method)).toContain('POST');
    const failures: string[] = [];
    let created = 0;
    const statuses = new Map<number, number>();

    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...present),
        fc.nat({ max: seedJobIds.length - 1 }),
        body,
        headers,
        async (route, seed, payload, extra) => {
          const response = await api.app.inject({
            method: route.method,
            url: route.url.replace(':id', seedJobIds[seed]!),
            headers: { ...extra, authorization: `Bearer ${service.apiKey}` },
            payload,
          });
          if (response.statusCode >= 500)
            failures.push(
              `${route.method} ${response.statusCode} ${payload.slice(0, 200)} → ${response.body.slice(0, 200)}`,
            );
          if (route.method === 'POST' && response.statusCode === 201) created++;
          statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
          if (response.statusCode >= 400) {
            expect(response.headers['content-type']).toContain('application/problem+json');
          }
          return response.statusCode < 500;
        },
      ),
      { numRuns: RUNS, endOnFailure: true },
    );
    expect(failures).toEqual([]);

    const rows = await api.db.db.selectFrom('jobs').selectAll().where('service_id', '=', service.id).execute();
    expect(rows.length).toBe(seedJobIds.length + created);
    expect(created).toBeGreaterThan(100);
    expect(statuses.get(400)).toBeGreaterThan(1000);

    // Every row has exactly the registration its state calls for; nothing in Redis lacks a row.
    const schedulers = new Set((await queue.getJobSchedulers(0, -1, true)).map((s) => s.key));
    const onceJobs = new Set(
      (await queue.getJobs(['delayed', 'waiting'])).map((j) => j.id).filter((id) => id?.startsWith('once:')),
    );
    const expectedSchedulers = new Set<string>();
    const expectedOnce = new Set<string>();
    for (const row of rows) {
      const registration = registrationOf(jobFromRow(row, { current: SECRET_KEY }), Date.now(), row.run_count);
      if (registration.kind === 'scheduler') expectedSchedulers.add(registration.schedulerId);
      if (registration.kind === 'delayed') expectedOnce.add(registration.bullJobId);
    }
    expect([...schedulers].sort()).toEqual([...expectedSchedulers].sort());
    expect([...onceJobs].sort()).toEqual([...expectedOnce].sort());
  });
});
