/**
 * `npm run test:image [-- --keep] [--node-image NAME]`: builds the image the Dockerfile describes,
 * exactly as a user would (`docker build` of the repository), and runs it on a real engine: the
 * `migrate`, `api` and `worker` containers on the host's network against the local Postgres and
 * Redis (a database and a BullMQ prefix of their own), a job created through the container's api,
 * its callback received by a sink on loopback, then `docker stop` and a check that both processes
 * shut down gracefully (exit code 0, their shutdown log lines). Not part of `npm test`.
 *
 * What it needs it sets up (as root, with Debian's packages): the `docker.io` engine and client
 * (whose BuildKit needs no buildx plugin) and, when no `--node-image` is given, `debootstrap` for
 * a base image of its own (Debian bookworm + this machine's Node and npm), since no image
 * registry may be reachable. When no engine answers it starts one, with no bridge network and on
 * a socket of its own, and stops it afterwards. Every container runs with `--network host`, so
 * all traffic stays on loopback. It removes its containers, images and database afterwards;
 * `--keep` keeps the images (and the engine it started) for docker-compose.yml or a cluster.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { dropDatabase } from '@tickwork/db';
import {
  ADMIN_TOKEN,
  IMAGE,
  ROOT,
  call,
  deletePrefix,
  eventually,
  freePort,
  startSink,
  testBaseUrls,
  testPrefix,
  uniqueName,
  type Proc,
} from '@tickwork/testkit';

const { values } = parseArgs({
  options: {
    keep: { type: 'boolean', default: false },
    'node-image': { type: 'string' },
  },
});
const keep = values.keep;
const say = (line: string) => console.log(`[test:image] ${line}`);
const CACHE = join(ROOT, 'node_modules', '.cache', 'tickwork-image');
// The Debian client: the one in PATH may be a newer docker whose `build` wants buildx. Chosen
// again once docker.io is installed: on a machine without it, it is not there yet at start.
const dockerClient = () => (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');
let DOCKER = dockerClient();
const dockerEnv: NodeJS.ProcessEnv = { ...process.env, DOCKER_BUILDKIT: '1' };

function run(cmd: string, args: string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(cmd, args, { encoding: 'utf8', env: dockerEnv, maxBuffer: 64 << 20, ...options });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? `\n${result.error.message}` : ''}`;
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${result.status}):\n${output.slice(-4000)}`);
  }
  return String(result.stdout ?? '');
}
const docker = (...args: string[]) => run(DOCKER, args).trim();

function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'PATH="$PATH:/usr/sbin:/sbin" command -v "$1"', 'sh', cmd]).status === 0;
}

/** Debian's packages for the commands that are missing (apt-get update once when the lists are stale). */
function ensurePackages(needs: Array<[command: string, pkg: string]>): void {
  const missing = [...new Set(needs.filter(([cmd]) => !hasCommand(cmd)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error(`missing ${missing.join(', ')}: run apt-get install -y ${missing.join(' ')}`);
  say(`installing ${missing.join(' ')} (apt-get)`);
  const apt = (...args: string[]) =>
    spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    }).status;
  if (apt('install', '-y', '-q', ...missing) !== 0) {
    apt('update', '-q');
    if (apt('install', '-y', '-q', ...missing) !== 0) throw new Error(`apt-get install ${missing.join(' ')} failed`);
  }
}

interface Engine {
  /** The socket of the dockerd this run started, if it started one. */
  socket?: string;
  stop(): Promise<void>;
}

/**
 * The engine that answers, else a dockerd of this run's own. Its socket is private so that
 * nothing else on the machine (the test set-up looks for a default engine) finds it; it makes no
 * bridge network and touches no iptables.
 */
async function ensureEngine(): Promise<Engine> {
  if (spawnSync(DOCKER, ['info'], { stdio: 'ignore', env: dockerEnv }).status === 0) {
    return { stop: async () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), 'tw-dockerd-'));
  const socket = join(dir, 'docker.sock');
  say(`starting dockerd (socket ${socket})`);
  const child: ChildProcess = spawn(
    'dockerd',
    [
      `--host=unix://${socket}`,
      `--exec-root=${join(dir, 'exec')}`,
      `--pidfile=${join(dir, 'dockerd.pid')}`,
      '--bridge=none',
      '--iptables=false',
      '--ip-forward=false',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-8000);
  });
  dockerEnv.DOCKER_HOST = `unix://${socket}`;
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`dockerd exited (${child.exitCode}):\n${log}`);
      return spawnSync(DOCKER, ['info'], { stdio: 'ignore', env: dockerEnv }).status === 0 ? true : undefined;
    },
    60_000,
    'dockerd to answer',
  );
  return {
    socket,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      // dockerd leaves its network namespace bound under its exec root.
      const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n');
      for (const mountPoint of mounts.map((line) => line.split(' ')[1] ?? '').filter((m) => m.startsWith(dir))) {
        spawnSync('umount', ['--lazy', mountPoint], { stdio: 'ignore' });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Node 24 base image like node:24-slim (node and npm in /usr/local, a `node` user with uid
 * 1000), made from a Debian bookworm root file system and this machine's Node and npm, and
 * imported (no registry needed). It trusts this machine's CA bundle, so npm inside a build
 * reaches the registry the way this machine does. The root file system is made once and kept
 * under node_modules/.cache.
 */
function importBaseImage(): string {
  const name = `tickwork-test-node:${process.versions.node}`;
  const tarball = join(CACHE, `bookworm-node-${process.versions.node}.tar`);
  if (!existsSync(tarball)) {
    ensurePackages([['debootstrap', 'debootstrap']]);
    mkdirSync(CACHE, { recursive: true });
    const rootfs = mkdtempSync(join(CACHE, 'rootfs-'));
    try {
      say('making a Debian bookworm root file system (debootstrap, once: about 2 minutes)');
      run('debootstrap', ['--variant=minbase', 'bookworm', rootfs], { stdio: ['ignore', 'ignore', 'pipe'] });
      copyFileSync(realpathSync(process.execPath), join(rootfs, 'usr/local/bin/node'));
      const npm = dirname(
        dirname(realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim())),
      );
      cpSync(npm, join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true });
      run('ln', ['-s', '../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm')]);
      run('ln', ['-s', '../lib/node_modules/npm/bin/npx-cli.js', join(rootfs, 'usr/local/bin/npx')]);
      mkdirSync(join(rootfs, 'etc/ssl/certs'), { recursive: true });
      copyFileSync('/etc/ssl/certs/ca-certificates.crt', join(rootfs, 'etc/ssl/certs/ca-certificates.crt'));
      run('chroot', [rootfs, 'sh', '-c', 'groupadd -g 1000 node && useradd -u 1000 -g node -m -s /bin/sh node']);
      run('tar', ['-C', rootfs, '-cf', `${tarball}.tmp`, '.']);
      run('mv', [`${tarball}.tmp`, tarball]);
    } finally {
      rmSync(rootfs, { recursive: true, force: true });
    }
  }
  say(`importing ${name}`);
  run(DOCKER, [
    'import',
    '--change',
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    '--change',
    'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
    '--change',
    'CMD ["node"]',
    tarball,
    name,
  ]);
  return name;
}

const ownImages: string[] = [];
const containers: string[] = [];
const tag = randomBytes(4).toString('hex');
const { databaseUrl, redisUrl } = testBaseUrls();
const database = new URL(databaseUrl);
database.pathname = `/${uniqueName('tw_image')}`;
const prefix = testPrefix();
const envDir = mkdtempSync(join(tmpdir(), 'tw-image-env-'));
const sink = await startSink();
let engine: Engine | undefined;
let failed = false;

try {
  ensurePackages([
    ['dockerd', 'docker.io'],
    ['/usr/bin/docker', 'docker.io'],
  ]);
  DOCKER = dockerClient();
  engine = await ensureEngine();

  let nodeImage = values['node-image'];
  if (!nodeImage) {
    nodeImage = importBaseImage();
    ownImages.push(nodeImage);
  }

  say(`building ${IMAGE} (docker build --network host --build-arg NODE_IMAGE=${nodeImage} .)`);
  const started = Date.now();
  const existed = spawnSync(DOCKER, ['image', 'inspect', IMAGE], { stdio: 'ignore', env: dockerEnv }).status === 0;
  run(DOCKER, ['build', '--network', 'host', '--build-arg', `NODE_IMAGE=${nodeImage}`, '-t', IMAGE, '.'], {
    cwd: ROOT,
  });
  if (!existed) ownImages.push(IMAGE);
  const size = docker('image', 'ls', IMAGE, '--format', '{{.Size}}');
  say(`built in ${((Date.now() - started) / 1000).toFixed(0)} s: ${size}`);

  const [port, workerPort] = await Promise.all([freePort(), freePort()]);
  const env = {
    DATABASE_URL: database.toString(),
    REDIS_URL: redisUrl,
    BULLMQ_PREFIX: prefix,
    ADMIN_TOKEN,
    SECRET_KEY: randomBytes(24).toString('hex'),
    HOST: '127.0.0.1',
    PORT: String(port),
    WORKER_PORT: String(workerPort),
    // The sink listens on loopback.
    CALLBACK_ALLOW_PRIVATE: 'true',
    LOG_LEVEL: 'info',
  };
  const envFile = join(envDir, 'env');
  writeFileSync(
    envFile,
    Object.entries(env)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
  );
  const container = (role: string, ...args: string[]) => [
    'run',
    '--network',
    'host',
    '--env-file',
    envFile,
    ...args,
    IMAGE,
    role,
  ];

  say('migrate');
  say(docker(...container('migrate', '--rm')));
  const names = { api: `tw-image-api-${tag}`, worker: `tw-image-worker-${tag}` };
  for (const role of ['api', 'worker'] as const) {
    docker(...container(role, '--detach', '--name', names[role]));
    containers.push(names[role]);
  }
  const api = { url: `http://127.0.0.1:${port}` } as Proc;
  for (const url of [api.url, `http://127.0.0.1:${workerPort}`]) {
    await eventually(
      async () => ((await fetch(`${url}/health/ready`)).ok ? true : undefined),
      60_000,
      `${url}/health/ready`,
    );
  }
  say(`api and worker ready (${api.url}, worker health on ${workerPort})`);

  const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'image' } });
  if (service.status !== 201) throw new Error(`creating a service: ${service.status} ${JSON.stringify(service.body)}`);
  const job = await call(api, 'POST', '/v1/jobs', {
    token: service.body.apiKey,
    body: { name: 'image-check', schedule: { every: '1s' }, target: { url: `${sink.url}/image` } },
  });
  if (job.status !== 201) throw new Error(`creating a job: ${job.status} ${JSON.stringify(job.body)}`);
  await sink.waitFor(
    (received) => received.some((r) => r.headers['tickwork-job-id'] === job.body.id),
    30_000,
    "the job's callback",
  );
  say(`callback received from the worker container (webhook-id ${sink.received[0]?.headers['webhook-id']})`);

  say('docker stop');
  docker('stop', '--time', '45', names.api, names.worker);
  const expectations = {
    api: ['"signal":"SIGTERM"', 'shutting down: finishing in-flight requests'],
    worker: ['"signal":"SIGTERM"', 'shutting down: finishing in-flight occurrences', 'worker stopped'],
  };
  for (const role of ['api', 'worker'] as const) {
    const code = docker('inspect', '--format', '{{.State.ExitCode}}', names[role]);
    const logs = run(DOCKER, ['logs', names[role]], { stdio: ['ignore', 'pipe', 'pipe'] });
    const missing = expectations[role].filter((line) => !logs.includes(line));
    if (code !== '0' || missing.length > 0) {
      throw new Error(`${role} did not shut down gracefully (exit ${code}; missing ${missing.join(', ')}):\n${logs}`);
    }
    say(`${role} exited 0 after its graceful shutdown`);
  }
  say(`passed: ${IMAGE} builds, migrates, serves, delivers and stops gracefully`);
} catch (error) {
  failed = true;
  console.error(`[test:image] FAILED: ${(error as Error).message}`);
  for (const name of containers) {
    console.error(`--- docker logs ${name}`);
    const logs = spawnSync(DOCKER, ['logs', name], { encoding: 'utf8', env: dockerEnv });
    console.error(`${logs.stdout}${logs.stderr}`.slice(-3000));
  }
} finally {
  for (const name of containers) spawnSync(DOCKER, ['rm', '--force', name], { stdio: 'ignore', env: dockerEnv });
  if (keep) say(`kept: ${ownImages.join(', ') || 'no images of its own'}`);
  else for (const image of ownImages) spawnSync(DOCKER, ['image', 'rm', image], { stdio: 'ignore', env: dockerEnv });
  rmSync(envDir, { recursive: true, force: true });
  await sink.close();
  await dropDatabase(database.toString()).catch(() => {});
  await deletePrefix(redisUrl, prefix).catch(() => {});
  if (keep && engine?.socket) say(`the engine it started keeps running: DOCKER_HOST=unix://${engine.socket}`);
  else await engine?.stop();
}
process.exit(failed ? 1 : 0);
