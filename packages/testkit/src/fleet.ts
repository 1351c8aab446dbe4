/**
 * A local fleet without Docker: N api and M worker processes on loopback, with Debian's nginx in
 * front on one port (round robin, a failed or closing upstream retried on the next one). The
 * chaos suite starts one per scenario; `npm run fleet` (scripts/fleet.ts) starts one by hand.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { freePort } from './ports.ts';
import { startApi, startWorker, type Build, type FleetEnv, type Proc } from './processes.ts';

export interface FleetOptions {
  /** @defaultValue 1 */
  apis?: number;
  /** @defaultValue 1 */
  workers?: number;
  /** DATABASE_URL, REDIS_URL, BULLMQ_PREFIX and anything else the processes should see. */
  env: FleetEnv;
  /** Put nginx in front of the apis. @defaultValue true */
  nginx?: boolean;
  /** nginx's port. @defaultValue a free one */
  port?: number;
  /** Where process output goes besides each Proc's `output`. */
  onOutput?: (name: string, line: string) => void;
  /** What the processes run. @defaultValue 'sources' */
  from?: Build;
}

export interface Fleet {
  /** nginx when it runs, else the first api. */
  url: string;
  apis: Proc[];
  workers: Proc[];
  env: FleetEnv;
  /** Stops api `i` with `signal` (SIGTERM: graceful) and starts it again on the same port. */
  restartApi(i: number, signal?: NodeJS.Signals): Promise<Proc>;
  /** Stops worker `i` with `signal` (SIGKILL: a crash) and starts a new one in its place. */
  restartWorker(i: number, signal?: NodeJS.Signals): Promise<Proc>;
  stop(): Promise<void>;
}

/** Finds nginx, installing Debian's package when it is missing and we may. */
export function ensureNginx(): string {
  const find = () => {
    for (const path of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) {
      try {
        execFileSync(path, ['-v'], { stdio: 'ignore' });
        return path;
      } catch {
        // not there
      }
    }
    return undefined;
  };
  const found = find();
  if (found) return found;
  if (process.getuid?.() !== 0) throw new Error('fleet: nginx is not installed; run `sudo apt-get install -y nginx`');
  console.error('fleet: installing nginx (apt-get install -y nginx)');
  execFileSync('apt-get', ['install', '-y', '-q', 'nginx'], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  const installed = find();
  if (!installed) throw new Error('fleet: nginx did not install');
  return installed;
}

function nginxConfig(dir: string, port: number, upstreams: number[]): string {
  return `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream tickwork_api {
${upstreams.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=1s;`).join('\n')}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 128k;
    location / {
      proxy_pass http://tickwork_api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # An api that is closing (SIGTERM) refuses connections or answers 503 before doing
      # anything: the request is safe to send to the next one, even a POST.
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 4;
      proxy_connect_timeout 1s;
      proxy_read_timeout 40s;
    }
  }
}
`;
}

async function waitHttp(url: string, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode})`);
    try {
      const response = await request(url);
      await response.body.dump();
      if (response.statusCode < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nginx not answering at ${url} after ${timeoutMs} ms`);
}

function tee(proc: Proc, name: string, onOutput: FleetOptions['onOutput']): Proc {
  if (onOutput) {
    proc.child.stdout?.on('data', (d: Buffer) => onOutput(name, d.toString()));
    proc.child.stderr?.on('data', (d: Buffer) => onOutput(name, d.toString()));
  }
  return proc;
}

export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const apiCount = options.apis ?? 1;
  const workerCount = options.workers ?? 1;
  const env = options.env;
  const from = options.from ?? 'sources';
  const apis: Proc[] = [];
  const workers: Proc[] = [];
  let nginx: { child: ChildProcess; dir: string } | undefined;

  const stop = async () => {
    if (nginx) {
      const exited = once(nginx.child, 'exit');
      if (nginx.child.exitCode === null) nginx.child.kill('SIGTERM');
      await exited.catch(() => {});
      rmSync(nginx.dir, { recursive: true, force: true });
      nginx = undefined;
    }
    await Promise.allSettled([...apis, ...workers].map((p) => p.stop('SIGTERM')));
  };

  try {
    const apiPorts = await Promise.all(Array.from({ length: apiCount }, () => freePort()));
    const started = await Promise.all([
      ...apiPorts.map((port) => startApi(env, { port, from })),
      ...Array.from({ length: workerCount }, () => startWorker(env, { from })),
    ]);
    apis.push(...started.slice(0, apiCount).map((p, i) => tee(p, `api-${i + 1}`, options.onOutput)));
    workers.push(...started.slice(apiCount).map((p, i) => tee(p, `worker-${i + 1}`, options.onOutput)));

    let url = apis[0]?.url ?? '';
    if (options.nginx !== false && apiCount > 0) {
      const binary = ensureNginx();
      const port = options.port ?? (await freePort());
      const dir = mkdtempSync(join(tmpdir(), 'tickwork-nginx-'));
      for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
      writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port, apiPorts));
      const child = spawn(binary, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], {
        stdio: 'ignore',
      });
      nginx = { child, dir };
      url = `http://127.0.0.1:${port}`;
      await waitHttp(`${url}/health/live`, child);
    }

    return {
      url,
      apis,
      workers,
      env,
      async restartApi(i, signal = 'SIGTERM') {
        const old = apis[i]!;
        await old.stop(signal);
        apis[i] = tee(await startApi(env, { port: old.port, from }), `api-${i + 1}`, options.onOutput);
        return apis[i]!;
      },
      async restartWorker(i, signal = 'SIGKILL') {
        await workers[i]!.stop(signal);
        workers[i] = tee(await startWorker(env, { from }), `worker-${i + 1}`, options.onOutput);
        return workers[i]!;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
