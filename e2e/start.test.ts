/**
 * `npm start` (scripts/start.ts) with its development defaults (a throwaway admin token, private
 * callbacks allowed) listens on 127.0.0.1 only: the api and the worker's health port answer there
 * and refuse 127.0.0.2, another loopback address that a socket bound to every interface would
 * accept. With HOST set, it listens where HOST says.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  ROOT,
  freePort,
  deletePrefix,
} from '@tickwork/testkit';

let db: TestDatabase;
const prefix = testPrefix();

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_start');
});
afterAll(async () => {
  await db?.drop();
  await deletePrefix(testBaseUrls().redisUrl, prefix);
});

/** Whether a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Runs `npm start`'s script until it says it is running; returns it with its ports. */
async function start(extra: Record<string, string>) {
  const [port, workerPort] = [await freePort(), await freePort()];
  const env: Record<string, string | undefined> = {
    ...process.env,
    DATABASE_URL: db.url,
    REDIS_URL: testBaseUrls().redisUrl,
    BULLMQ_PREFIX: prefix,
    PORT: String(port),
    WORKER_PORT: String(workerPort),
    LOG_LEVEL: 'warn',
    ...extra,
  };
  delete env.NODE_ENV;
  delete env.ADMIN_TOKEN;
  delete env.CALLBACK_ALLOW_PRIVATE;
  if (!('HOST' in extra)) delete env.HOST;
  const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const running = new Promise<void>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Tickwork is running')) resolve();
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.once('exit', (code) => reject(new Error(`start exited (${code}) before running:\n${output}`)));
  });
  await running;
  return { child, port, workerPort, output: () => output };
}

async function stop(child: ChildProcess) {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

describe('npm start', () => {
  it('listens on 127.0.0.1 only with the development defaults, and says so', async () => {
    const { child, port, workerPort, output } = await start({});
    try {
      expect(output()).toContain('HOST=127.0.0.1 (development)');
      expect(await accepts('127.0.0.1', port)).toBe(true);
      expect(await accepts('127.0.0.1', workerPort)).toBe(true);
      expect(await accepts('127.0.0.2', port)).toBe(false);
      expect(await accepts('127.0.0.2', workerPort)).toBe(false);
    } finally {
      await stop(child);
    }
  }, 120_000);

  it('listens where HOST says when it is set', async () => {
    const { child, port, output } = await start({ HOST: '0.0.0.0' });
    try {
      expect(output()).not.toContain('HOST=127.0.0.1');
      expect(await accepts('127.0.0.2', port)).toBe(true);
    } finally {
      await stop(child);
    }
  }, 120_000);
});
