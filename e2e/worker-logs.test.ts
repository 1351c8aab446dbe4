/**
 * A real worker's log lines on stdout: written in batches (4 KiB, or at least once a second)
 * rather than one write per line, so a line logged while nothing else is must still arrive within
 * about a second, every line whole, and what is still buffered when the process exits is written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  deletePrefix,
  eventually,
  logLinesOf,
  startWorker,
  testBaseUrls,
  testPrefix,
  type FleetEnv,
  type Proc,
  type TestDatabase,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
const workers: Proc[] = [];

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_worker_logs');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix(), LOG_LEVEL: 'info' };
});
afterAll(async () => {
  await Promise.allSettled(workers.map((w) => w.stop()));
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

describe("the worker's log lines", () => {
  for (const buffer of ['on (the default)', 'off']) {
    it(`reach stdout within about a second and at exit, each whole, with TICKWORK_LOG_BUFFER ${buffer}`, async () => {
      const worker = await startWorker(buffer === 'off' ? { ...env, TICKWORK_LOG_BUFFER: 'off' } : env);
      workers.push(worker);
      // Its start logs far less than 4 KiB: only the periodic write brings this line while the
      // worker is idle.
      await eventually(
        async () => (logLinesOf(worker).some((line) => line.msg === 'health and metrics port open') ? true : undefined),
        3_000,
        'the line logged once the health port is open',
      );
      expect(await worker.stop('SIGTERM')).toBe(0);
      const lines = logLinesOf(worker);
      // Logged just before the process exits: written by the flush at exit, not by the timer.
      expect(lines.map((line) => line.msg)).toContain('worker stopped');
      expect(lines.every((line) => line.service === 'tickwork-worker')).toBe(true);
    }, 60_000);
  }
});
