/** Real api and worker processes for end-to-end tests, each on its own port, database and prefix. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { NODE_FLAGS, TYPESCRIPT_CACHE } from '../../infra/node/node-flags.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const ADMIN_TOKEN = 'e2e-admin-token-0123456789';

export { freePort } from '@tickwork/queue/testing';
import { freePort } from '@tickwork/queue/testing';

export interface Proc {
  child: ChildProcess;
  port: number;
  url: string;
  output: string[];
  /** Sends a signal and waits for the exit; resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface FleetEnv {
  DATABASE_URL: string;
  REDIS_URL: string;
  BULLMQ_PREFIX: string;
  [name: string]: string;
}

async function waitReady(url: string, child: ChildProcess, output: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`process exited (${child.exitCode}) before ready:\n${output.join('')}`);
    try {
      const response = await request(`${url}/health/ready`);
      await response.body.dump();
      if (response.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not ready after ${timeoutMs} ms:\n${output.join('')}`);
}

/**
 * The Node flags a process starts with: ours (infra/node/node-flags.ts), as every start command
 * uses them. `TICKWORK_NODE_FLAGS` (in the process's env or this one's) replaces them
 * (space-separated; empty for none), for the bench's side-by-side runs; a checkout from before the flags existed runs without them.
 */
function nodeFlagsFor(cwd: string, env: Record<string, string>): string[] {
  const replaced = env.TICKWORK_NODE_FLAGS ?? process.env.TICKWORK_NODE_FLAGS;
  if (replaced !== undefined) return replaced.split(' ').filter(Boolean);
  return existsSync(join(cwd, TYPESCRIPT_CACHE)) ? [...NODE_FLAGS] : [];
}

function launch(script: string, env: Record<string, string>, port: number): Proc {
  // TICKWORK_ROOT runs the process from another checkout (the bench's code A/B).
  const cwd = env.TICKWORK_ROOT ?? ROOT;
  const child = spawn(process.execPath, [...nodeFlagsFor(cwd, env), script], {
    cwd,
    env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** Where a started process listens; a restarted process keeps its port (nginx knows it by it). */
export interface StartOptions {
  port?: number;
}

export async function startApi(env: FleetEnv, options: StartOptions = {}): Promise<Proc> {
  const port = options.port ?? (await freePort());
  // Tests aim callbacks at loopback sinks; a test of the outbound guard sets it back to false.
  const proc = launch(
    'apps/api/src/server.ts',
    { ADMIN_TOKEN, CALLBACK_ALLOW_PRIVATE: 'true', HOST: '127.0.0.1', PORT: String(port), ...env },
    port,
  );
  await waitReady(proc.url, proc.child, proc.output);
  return proc;
}

export async function startWorker(env: FleetEnv, options: StartOptions = {}): Promise<Proc> {
  const port = options.port ?? (await freePort());
  const proc = launch(
    'apps/worker/src/main.ts',
    { CALLBACK_ALLOW_PRIVATE: 'true', HOST: '127.0.0.1', WORKER_PORT: String(port), ...env },
    port,
  );
  await waitReady(proc.url, proc.child, proc.output);
  return proc;
}

/** JSON over HTTP against a started api. */
export async function call(
  api: Proc,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: any }> {
  const response = await request(`${api.url}${path}`, {
    method,
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}
