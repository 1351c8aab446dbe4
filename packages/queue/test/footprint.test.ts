/**
 * What one schedule costs Redis: the scheduler's hash must stay a listpack under Redis's stock
 * `hash-max-listpack-value` (64 bytes), and finished occurrences are trimmed by the Worker's
 * retention, not by options stored in every occurrence. A Redis of the test's own, so the
 * encoding threshold is the stock one whatever the shared Redis runs with.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { buildJobSpec, type Job } from '@tickwork/core';
import { FIRE_QUEUE, cronRepeatStrategy, registrationOf, schedulerIdOf } from '../src/catalog.ts';
import { FINISHED_RETENTION, OCCURRENCE_OPTIONS, applyRegistration } from '../src/fire-queue.ts';
import { startOwnRedis, type OwnRedis } from '@tickwork/testkit';

const prefix = '{tickwork}';
let server: OwnRedis;
let redis: Redis;
let queue: Queue;

function jobOf(body: Parameters<typeof buildJobSpec>[0], now: number): Job {
  const spec = buildJobSpec(body, { now });
  // The longest version a job is likely to reach keeps the data near its widest.
  return {
    ...spec,
    id: randomUUID(),
    serviceId: randomUUID(),
    state: 'active',
    version: 9_999,
    createdAt: now,
    updatedAt: now,
  };
}

beforeAll(async () => {
  server = await startOwnRedis(['--hash-max-listpack-value', '64']);
  redis = new Redis(server.url);
  queue = new Queue(FIRE_QUEUE, {
    connection: { port: server.port, host: '127.0.0.1' },
    prefix,
    settings: { repeatStrategy: cronRepeatStrategy },
  });
});
afterAll(async () => {
  await queue?.close();
  redis?.disconnect();
  await server?.stop();
});

describe('a registered schedule in Redis', () => {
  it.each([
    ['an interval', { every: '1m' }],
    ['a cron with a time zone', { cron: '0 9 * * 1-5', timezone: 'America/Argentina/Buenos_Aires' }],
  ])('keeps %s scheduler as a listpack, its occurrence without retention options', async (_, schedule) => {
    const now = Date.now();
    const job = jobOf(
      {
        name: 'j',
        schedule,
        startAt: new Date(now + 60_000).toISOString(),
        // A week and a day: a weekday 09:00 falls inside it whatever the clock says now.
        endAt: new Date(now + 8 * 86_400_000).toISOString(),
        target: { url: 'http://127.0.0.1:9/' },
      },
      now,
    );
    const registration = registrationOf(job, now);
    expect(registration.kind).toBe('scheduler');
    await applyRegistration(queue, job, registration, now);

    const schedulerKey = `${prefix}:${FIRE_QUEUE}:repeat:${schedulerIdOf(job.id, job.version)}`;
    const fields = await redis.hgetall(schedulerKey);
    expect(Object.keys(fields)).toContain('opts');
    expect(await redis.object('ENCODING', schedulerKey)).toBe('listpack');

    const [occurrenceKey] = await redis.keys(`${schedulerKey}:*`);
    const opts = JSON.parse((await redis.hget(occurrenceKey!, 'opts'))!) as Record<string, unknown>;
    expect(opts).toMatchObject({ attempts: OCCURRENCE_OPTIONS.attempts, backoff: OCCURRENCE_OPTIONS.backoff });
    expect(opts).not.toHaveProperty('removeOnComplete');
    expect(opts).not.toHaveProperty('removeOnFail');
  });
});

describe("the Worker's retention", () => {
  it('trims finished occurrences that carry no retention of their own', async () => {
    const trimmed = new Queue('retention', { connection: { port: server.port, host: '127.0.0.1' }, prefix });
    const done: string[] = [];
    // Our retention with a count small enough to see it apply; the mechanism is the same.
    const worker = new Worker('retention', async () => 'ok', {
      connection: { port: server.port, host: '127.0.0.1', maxRetriesPerRequest: null },
      prefix,
      ...FINISHED_RETENTION,
      removeOnComplete: { ...FINISHED_RETENTION.removeOnComplete, count: 2 },
    });
    const allDone = new Promise<void>((resolve) =>
      worker.on('completed', (job) => {
        done.push(job.id!);
        if (done.length === 4) resolve();
      }),
    );
    try {
      for (let i = 0; i < 4; i++)
        await trimmed.add('fire', { i }, { ...OCCURRENCE_OPTIONS, jobId: `once:${randomUUID()}:v1` });
      await allDone;
      expect(await trimmed.getJobCountByTypes('completed')).toBe(2);
    } finally {
      await worker.close();
      await trimmed.close();
    }
  });
});
