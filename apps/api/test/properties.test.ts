/**
 * Properties through the REST API (fast-check): previews of random cron schedules in random time
 * zones and windows are strictly increasing, inside the window and match the cron fields; and any
 * sequence of PATCH / pause / resume / trigger leaves exactly the registration the job's state
 * calls for — one scheduler under the current version's id when active, none otherwise.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;
let queue: Queue;

beforeAll(async () => {
  api = await startTestApi();
  key = (await api.newService('properties')).apiKey;
  queue = new Queue('fire', {
    connection: new Redis(api.redisUrl, { maxRetriesPerRequest: null }),
    prefix: api.prefix,
  });
});
afterAll(async () => {
  await queue?.close();
  await api?.close();
});

const inject = (
  method: 'GET' | 'POST' | 'PATCH',
  url: string,
  payload?: object,
  headers: Record<string, string> = {},
) =>
  api.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}`, ...headers },
    ...(payload ? { payload } : {}),
  });

/** Whether a value matches one cron field of the simple forms generated below: `*`, `n`, `a-b`, `*\/k`, `a,b`. */
function fieldMatches(field: string, value: number): boolean {
  return field.split(',').some((part) => {
    if (part === '*') return true;
    if (part.startsWith('*/')) return value % Number(part.slice(2)) === 0;
    const [from, to] = part.split('-').map(Number) as [number, number | undefined];
    return to === undefined ? value === from : value >= from && value <= to;
  });
}

describe('preview properties', () => {
  const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kathmandu'];
  const cronArb = fc
    .tuple(
      fc.constantFrom('0', '30', '*/15'),
      fc.constantFrom('*', '2', '1-3', '*/5', '23'),
      fc.constantFrom('*', '1', '28'),
      fc.constantFrom('*', '3', '11'),
      fc.constantFrom('*', '0', '1-5'),
    )
    .map((parts) => parts.join(' '));
  const base = Date.parse('2027-01-01T00:00:00Z');

  it('are strictly increasing, inside [startAt, endAt] and match the cron fields', async () => {
    await fc.assert(
      fc.asyncProperty(
        cronArb,
        fc.constantFrom(...zones),
        fc.integer({ min: 0, max: 365 * 86_400 }),
        fc.integer({ min: 1, max: 200 }),
        async (cron, timezone, offsetS, days) => {
          const startAt = base + offsetS * 1_000;
          const endAt = startAt + days * 86_400_000;
          const response = await inject('POST', '/v1/schedules/preview', {
            schedule: { cron, timezone },
            startAt: new Date(startAt).toISOString(),
            endAt: new Date(endAt).toISOString(),
            count: 25,
          });
          expect(response.statusCode).toBe(200);
          const runs: number[] = response.json().nextRuns.map(Date.parse);
          const [minute, hour, , month] = cron.split(' ') as [string, string, string, string, string];
          for (let i = 0; i < runs.length; i++) {
            if (i > 0) expect(runs[i]!).toBeGreaterThan(runs[i - 1]!);
            expect(runs[i]!).toBeGreaterThanOrEqual(startAt);
            expect(runs[i]!).toBeLessThanOrEqual(endAt);
            const parts = Object.fromEntries(
              new Intl.DateTimeFormat('en-US', {
                timeZone: timezone,
                hourCycle: 'h23',
                month: 'numeric',
                hour: 'numeric',
                minute: 'numeric',
              })
                .formatToParts(runs[i]!)
                .map((p) => [p.type, Number(p.value)]),
            );
            expect(fieldMatches(minute, parts.minute!)).toBe(true);
            expect(fieldMatches(hour, parts.hour!)).toBe(true);
            expect(fieldMatches(month, parts.month!)).toBe(true);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('lifecycle properties', () => {
  type Command =
    | { kind: 'patch'; every: string; stale: boolean }
    | { kind: 'pause' }
    | { kind: 'resume' }
    | { kind: 'trigger' };
  const command: fc.Arbitrary<Command> = fc.oneof(
    fc.record({ kind: fc.constant('patch' as const), every: fc.constantFrom('1m', '5m', '1h'), stale: fc.boolean() }),
    fc.constant({ kind: 'pause' as const }),
    fc.constant({ kind: 'resume' as const }),
    fc.constant({ kind: 'trigger' as const }),
  );
  let n = 0;

  it('keep one scheduler under the current version when active, none when paused, and versions only grow', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 8 }), async (commands) => {
        const created = await inject('POST', '/v1/jobs', {
          name: `prop-${++n}`,
          schedule: { every: '1m' },
          target: { url: 'https://example.com' },
        });
        let job = created.json();
        for (const c of commands) {
          const before = job.version;
          let response: Awaited<ReturnType<typeof inject>>;
          if (c.kind === 'patch') {
            response = await inject(
              'PATCH',
              `/v1/jobs/${job.id}`,
              { schedule: { every: c.every } },
              { 'if-match': `W/"${c.stale ? before - 1 : before}"` },
            );
            expect(response.statusCode).toBe(c.stale ? 412 : 200);
          } else if (c.kind === 'trigger') {
            response = await inject('POST', `/v1/jobs/${job.id}/trigger`);
            expect(response.statusCode).toBe(202);
            continue;
          } else {
            response = await inject('POST', `/v1/jobs/${job.id}/${c.kind}`);
            expect(response.statusCode).toBe(200);
          }
          if (response.statusCode === 200) {
            job = response.json();
            expect(response.headers.etag).toBe(`W/"${job.version}"`);
          }
          expect(job.version).toBeGreaterThanOrEqual(before);
          const schedulers = (await queue.getJobSchedulers(0, -1))
            .filter((s) => s.key.startsWith(`job:${job.id}:`))
            .map((s) => s.key);
          expect(schedulers).toEqual(job.state === 'active' ? [`job:${job.id}:v${job.version}`] : []);
          if (job.state === 'active') expect(Date.parse(job.nextRunAt)).toBeGreaterThan(Date.now() - 1_000);
          else expect(job.nextRunAt).toBeNull();
        }
      }),
      { numRuns: 15 },
    );
  });
});
