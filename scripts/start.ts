/**
 * `npm start`: one api and one worker in the foreground, after creating and migrating the
 * database. Ctrl-C or SIGTERM stops both. Development defaults (an admin token, callbacks to
 * private addresses allowed, listening on 127.0.0.1 only) apply only when NODE_ENV is not
 * production, each only where its variable is not set, and are printed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// Every process starts through infra/node/launch.sh (the built code, its Node flags) with this node.
const env: NodeJS.ProcessEnv = { ...process.env, NODE: process.execPath };
const launch = (name: string) => ['infra/node/launch.sh', name];
const notes: string[] = [];
if (env.NODE_ENV !== 'production') {
  if (!env.ADMIN_TOKEN) {
    env.ADMIN_TOKEN = `dev-admin-${randomBytes(12).toString('hex')}`;
    notes.push(`ADMIN_TOKEN was not set; for this run it is: ${env.ADMIN_TOKEN}`);
  }
  if (env.CALLBACK_ALLOW_PRIVATE === undefined) {
    env.CALLBACK_ALLOW_PRIVATE = 'true';
    notes.push('CALLBACK_ALLOW_PRIVATE=true (development): callbacks may reach localhost and private networks');
  }
  // With a throwaway admin token and private callbacks allowed, nothing but this machine should
  // reach the api (or the worker's health port).
  if (env.HOST === undefined) {
    env.HOST = '127.0.0.1';
    notes.push(
      'HOST=127.0.0.1 (development): reachable from this machine only; set HOST=0.0.0.0 to listen on every interface',
    );
  }
}

spawnSync('bash', ['scripts/ensure-services.sh'], { cwd: root, env, stdio: 'inherit' });
const migrate = spawnSync('sh', launch('migrate'), { cwd: root, env, stdio: 'inherit' });
if (migrate.status !== 0) {
  console.error('start: the migration failed; is Postgres running? (see DATABASE_URL)');
  process.exit(1);
}

const port = env.PORT ?? '3000';
const children: ChildProcess[] = [];
let stopping = false;

function run(name: 'api' | 'worker') {
  // A process group of its own: Ctrl-C reaches this script alone, which forwards one SIGTERM. In
  // the terminal's group a child would get the SIGINT and then our SIGTERM, and a second signal
  // makes close-with-grace exit at once instead of finishing in-flight work.
  const child = spawn('sh', launch(name), {
    cwd: root,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`start: ${name} exited (${signal ?? code}); stopping the rest`);
      stop('SIGTERM', code ?? 1);
    }
  });
  children.push(child);
}

let exitCode = 0;
function stop(signal: NodeJS.Signals, code = 0) {
  if (stopping) return;
  stopping = true;
  exitCode = code;
  for (const child of children) if (child.exitCode === null) child.kill(signal);
}
process.on('SIGINT', () => stop('SIGTERM'));
// Detached children outlive this script unless told: whatever ends it, they get a SIGTERM.
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
});
process.on('SIGTERM', () => stop('SIGTERM'));

run('api');
run('worker');

// Say where things are once the api answers.
const base = `http://127.0.0.1:${port}`;
for (let i = 0; i < 100 && !stopping; i++) {
  try {
    const response = await fetch(`${base}/health/ready`);
    if (response.ok) {
      console.log(
        [
          '',
          `Tickwork is running (api + worker). Ctrl-C stops both.`,
          `  API          ${base}/v1`,
          `  API docs     ${base}/docs   (OpenAPI: ${base}/openapi.json)`,
          `  Bull Board   ${base}/admin/queues   (user: any, password: the ADMIN_TOKEN)`,
          `  Health       ${base}/health/ready`,
          ...notes.map((n) => `  note: ${n}`),
          '',
        ].join('\n'),
      );
      break;
    }
  } catch {
    // not up yet
  }
  await new Promise((r) => setTimeout(r, 200));
}

await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.on('exit', r)) : undefined)));
process.exit(exitCode);
