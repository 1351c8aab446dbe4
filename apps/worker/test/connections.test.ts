/**
 * How many Redis connections a running worker holds, read from Redis's own CLIENT LIST on a
 * Redis of the test's own (nothing else connects to it), and that each one says whose it is.
 * Before the connection factory the same worker held nine, seven of them unnamed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Redis } from 'ioredis';
import { createTestDatabase, testPrefix, type TestDatabase } from '@tickwork/testkit';
import { startOwnRedis, type OwnRedis } from '@tickwork/testkit';
import { startWorker, type TickworkWorker, type WorkerConfig } from '../src/worker.ts';

let db: TestDatabase;
let redis: OwnRedis;
let probe: Redis;
let worker: TickworkWorker | undefined;

beforeAll(async () => {
  [db, redis] = await Promise.all([createTestDatabase('tw_worker_conns'), startOwnRedis()]);
  probe = new Redis(redis.url, { connectionName: 'test-probe' });
});
afterAll(async () => {
  await worker?.close();
  probe?.disconnect();
  await redis?.stop();
  await db?.drop();
});

interface Client {
  name: string;
  cmd: string;
}
async function clients(): Promise<Client[]> {
  const list = (await probe.client('LIST')) as string;
  return list
    .trim()
    .split('\n')
    .map((line) =>
      Object.fromEntries(
        line.split(' ').map((field) => [field.slice(0, field.indexOf('=')), field.slice(field.indexOf('=') + 1)]),
      ),
    )
    .filter((fields) => fields.name !== 'test-probe')
    .map((fields) => ({ name: fields.name ?? '', cmd: fields.cmd ?? '' }));
}

async function settled(): Promise<Client[]> {
  // Start-up opens and closes short-lived connections too: wait until the count holds still.
  const deadline = Date.now() + 10_000;
  let last = await clients();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = await clients();
    if (now.length === last.length) return now;
    if (Date.now() > deadline) throw new Error(`the worker's connections did not settle: ${JSON.stringify(now)}`);
    last = now;
  }
}

describe('the worker’s Redis connections', () => {
  it('holds four, each named: two shared by every queue and worker, and BullMQ’s two blocking ones', async () => {
    const prefix = testPrefix();
    const config: WorkerConfig = {
      databaseUrl: db.url,
      databasePoolMax: 4,
      redisUrl: redis.url,
      bullmqPrefix: prefix,
      workerConcurrency: 2,
      callbackAllowPrivate: true,
      callbackAllowedHosts: [],
      secretKey: 'test-secret-key-0123456789-0123456789',
      shutdownGraceMs: 1_000,
      reconcileIntervalMs: 60_000,
      reconcileSweepIntervalMs: 600_000,
      runRetentionDays: 30,
    };
    worker = await startWorker(config, pino({ level: 'silent' }));
    await worker.metrics.metrics();
    expect(await worker.isReady()).toMatchObject({ postgres: true, redis: true });
    const held = await settled();
    const blocking = (queue: string) => `${prefix}:${Buffer.from(queue).toString('base64')}`;
    expect(held.map((client) => client.name).sort()).toEqual(
      [
        `tickwork-worker:${worker.workerId}:shared`,
        `tickwork-worker:${worker.workerId}:fail-fast`,
        blocking('fire'),
        blocking('maintenance'),
      ].sort(),
    );
    // Only BullMQ's own blocking connections wait in BZPOPMIN; nothing else may sit behind one.
    expect(
      held
        .filter((client) => client.cmd === 'bzpopmin')
        .map((client) => client.name)
        .sort(),
    ).toEqual([blocking('fire'), blocking('maintenance')].sort());
    await worker.close();
    worker = undefined;
    expect(await clients()).toEqual([]);
  });
});
