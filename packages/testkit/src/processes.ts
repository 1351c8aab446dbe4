/**
 * Real api and worker processes, each on its own port, database and prefix, started the way
 * every Tickwork process starts: through infra/node/launch.sh (its Node flags, its entry files).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort } from './ports.ts';

/** The repository's root. */
export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const ADMIN_TOKEN = 'e2e-admin-token-0123456789';
const LAUNCH = 'infra/node/launch.sh';

export interface Proc {
  child: ChildProcess;
  port: number;
  url: string;
  output: string[];
  /** Sends a signal and waits for the exit; resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The JSON log lines a process has written so far (pino's, one object a line; other lines left out). */
export function logLinesOf(proc: Proc): Array<Record<string, unknown>> {
  return proc.output
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
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

let built = false;

/**
 * Builds dist/ when it is missing or older than the sources (scripts/bootstrap.sh, quiet and
 * quick when nothing changed), once per test process.
 */
export function ensureBuilt(): void {
  if (built) return;
  const result = spawnSync('bash', ['scripts/bootstrap.sh', 'true'], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`the build failed:\n${result.stderr}`);
  built = true;
}

function launch(role: 'api' | 'worker', env: Record<string, string>, port: number, from: Build): Proc {
  // TICKWORK_ROOT runs the process from another checkout (the bench's code A/B); one from before
  // infra/node/launch.sh existed runs its sources, with TICKWORK_NODE_FLAGS if given.
  const cwd = env.TICKWORK_ROOT ?? ROOT;
  if (from === 'dist' && cwd === ROOT) ensureBuilt();
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'warn',
    NODE_ENV: 'test',
    NODE: process.execPath,
    TICKWORK_SOURCES: from === 'sources' ? '1' : '0',
    ...env,
  };
  const [command, args] = existsSync(join(cwd, LAUNCH))
    ? ['sh', [LAUNCH, role]]
    : [
        process.execPath,
        [
          ...(childEnv.TICKWORK_NODE_FLAGS ?? '').split(' ').filter(Boolean),
          role === 'api' ? 'apps/api/src/server.ts' : 'apps/worker/src/main.ts',
        ],
      ];
  const child = spawn(command, args, { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
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

/**
 * What a process runs: the TypeScript sources (what tests check) or the built code (what ships,
 * what benchmarks measure).
 */
export type Build = 'sources' | 'dist';

export interface StartOptions {
  /** Where the process listens; a restarted process keeps its port (nginx knows it by it). @defaultValue a free one */
  port?: number;
  /** @defaultValue 'sources' */
  from?: Build;
}

export async function startApi(env: FleetEnv, options: StartOptions = {}): Promise<Proc> {
  const port = options.port ?? (await freePort());
  // Tests aim callbacks at loopback sinks; a test of the outbound guard sets it back to false.
  const proc = launch(
    'api',
    { ADMIN_TOKEN, CALLBACK_ALLOW_PRIVATE: 'true', HOST: '127.0.0.1', PORT: String(port), ...env },
    port,
    options.from ?? 'sources',
  );
  await waitReady(proc.url, proc.child, proc.output);
  return proc;
}

export async function startWorker(env: FleetEnv, options: StartOptions = {}): Promise<Proc> {
  const port = options.port ?? (await freePort());
  const proc = launch(
    'worker',
    { CALLBACK_ALLOW_PRIVATE: 'true', HOST: '127.0.0.1', WORKER_PORT: String(port), ...env },
    port,
    options.from ?? 'sources',
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
