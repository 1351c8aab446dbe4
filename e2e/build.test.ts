/**
 * The built code (dist/, turbo's `build` task) is what `npm start`, the fleet and the image run:
 * the set-up builds it when it is missing or stale and stays quiet otherwise; an api and a worker
 * started from it by infra/node/launch.sh deliver a job end to end and load only JavaScript (no
 * source of ours as TypeScript, so Node's type stripper never loads and its memory never counts).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  ROOT,
  call,
  createTestDatabase,
  deletePrefix,
  ensureBuilt,
  startApi,
  startSink,
  startWorker,
  testBaseUrls,
  testPrefix,
  type FleetEnv,
  type Proc,
  type Sink,
  type TestDatabase,
  uniqueName,
} from '@tickwork/testkit';
import { dropDatabase } from '@tickwork/db';

const setUp = () => spawnSync('bash', ['scripts/bootstrap.sh', 'true'], { cwd: ROOT, encoding: 'utf8' });

describe('the build step', () => {
  it('rebuilds when a source is newer than the build, and says nothing when nothing changed', () => {
    ensureBuilt();
    const quiet = setUp();
    expect(quiet.status, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');

    const source = join(ROOT, 'packages', 'metrics', 'src', 'index.ts');
    const now = new Date();
    utimesSync(source, now, now);
    const rebuilt = setUp();
    expect(rebuilt.status, rebuilt.stderr).toBe(0);
    expect(rebuilt.stderr).toContain('building dist/');
    expect(setUp().stderr).toBe('');
  });
});

describe('processes started from dist/', () => {
  let db: TestDatabase;
  let env: FleetEnv;
  let api: Proc;
  let worker: Proc;
  let sink: Sink;
  const probeDir = mkdtempSync(join(tmpdir(), 'tw-dist-probe-'));
  const loaded = (role: string) =>
    readFileSync(join(probeDir, `${role}.log`), 'utf8')
      .trim()
      .split('\n');

  beforeAll(async () => {
    // Preloaded into each process: records the URL of every module it loads, and at exit whether
    // Node's type stripper (amaro) was ever loaded.
    const probe = join(probeDir, 'probe.mjs');
    writeFileSync(
      probe,
      `import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
const log = process.env.PROBE_LOG;
registerHooks({ load(url, context, next) { appendFileSync(log, url + '\\n'); return next(url, context); } });
const stripped = () => process.moduleLoadList.some((m) => m.includes('amaro'));
process.on('exit', () => appendFileSync(log, 'stripper ' + stripped() + '\\n'));
`,
    );
    db = await createTestDatabase('tw_e2e_dist');
    env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
    sink = await startSink();
    const withProbe = (role: string) => ({
      ...env,
      NODE_OPTIONS: `--import=${probe}`,
      PROBE_LOG: join(probeDir, `${role}.log`),
    });
    [api, worker] = await Promise.all([
      startApi(withProbe('api'), { from: 'dist' }),
      startWorker(withProbe('worker'), { from: 'dist' }),
    ]);
  });

  afterAll(async () => {
    await Promise.allSettled([api?.stop(), worker?.stop()]);
    await sink?.close();
    await db?.drop();
    if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
    rmSync(probeDir, { recursive: true, force: true });
  });

  it('delivers a job, then stops on SIGTERM with exit code 0', async () => {
    const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'dist' } });
    expect(service.status).toBe(201);
    const created = await call(api, 'POST', '/v1/jobs', {
      token: service.body.apiKey,
      body: { name: 'tick', schedule: { every: '1s' }, target: { url: `${sink.url}/dist` } },
    });
    expect(created.status).toBe(201);
    await sink.waitFor((r) => r.some((x) => x.headers['tickwork-job-id'] === created.body.id), 20_000, 'a callback');
    expect(await api.stop()).toBe(0);
    expect(await worker.stop()).toBe(0);
  });

  it('migrates a new database with the built code (launch.sh migrate, as the image does)', async () => {
    const url = new URL(testBaseUrls().databaseUrl);
    url.pathname = `/${uniqueName('tw_e2e_migrate')}`;
    try {
      const migrate = spawnSync('sh', ['infra/node/launch.sh', 'migrate'], {
        cwd: ROOT,
        env: { ...process.env, DATABASE_URL: url.toString(), NODE: process.execPath, TICKWORK_SOURCES: '0' },
        encoding: 'utf8',
      });
      expect(migrate.status, migrate.stderr).toBe(0);
      expect(migrate.stdout).toMatch(/created the database, applied 0001_init/);
    } finally {
      await dropDatabase(url.toString());
    }
  });

  it('loaded our code from dist/ only, as JavaScript, and never the type stripper', () => {
    for (const role of ['api', 'worker']) {
      const lines = loaded(role);
      expect(lines.at(-1), role).toBe('stripper false');
      const ours = lines.filter((url) => url.startsWith(`file://${ROOT}`) && !url.includes('/node_modules/'));
      expect(ours.length, role).toBeGreaterThan(20);
      expect(
        ours.filter((url) => !/\/(apps|packages)\/[^/]+\/dist\/.+\.js$/.test(url)),
        role,
      ).toEqual([]);
    }
  });
});
