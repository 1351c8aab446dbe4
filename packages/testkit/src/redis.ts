/**
 * Redis for tests: a redis-server of a test's own, for settings the shared Redis must not change
 * and for scenarios that flush or restart it; removing every key under a test's BullMQ prefix.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { freePort } from './ports.ts';

export interface OwnRedis {
  url: string;
  port: number;
  /** Removes every key (the server is the test's own). */
  flushAll(): Promise<void>;
  /** Stops the server (SIGTERM, nothing saved). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty, as after a crash of a cache. */
  start(): Promise<void>;
  /** The same as stop(). */
  close(): Promise<void>;
}

/**
 * Starts `redis-server` on a free loopback port, without persistence and with `noeviction` (as
 * Tickwork wants it), so it writes nothing to disk; `args` add or override settings, e.g.
 * `['--maxmemory-policy', 'allkeys-lru']` or `['--hz', '100']`.
 */
export async function startOwnRedis(args: string[] = []): Promise<OwnRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async () => {
    const server = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--maxmemory-policy',
        'noeviction',
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = server;
    const output: string[] = [];
    server.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
    server.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`redis-server exited (${server.exitCode}):\n${output.join('')}`);
      const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      probe.on('error', () => {});
      const answered = await probe
        .connect()
        .then(() => probe.ping())
        .then(
          () => true,
          () => false,
        );
      probe.disconnect();
      if (answered) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${port}:\n${output.join('')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    url,
    port,
    async flushAll() {
      const client = new Redis(url);
      try {
        await client.flushall();
      } finally {
        client.disconnect();
      }
    },
    stop,
    start,
    close: stop,
  };
}

/** Removes every Redis key under a BullMQ prefix (a test's own), leaving everything else alone. */
export async function deletePrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
