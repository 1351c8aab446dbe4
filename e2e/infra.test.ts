/**
 * The deployment files checked without a container engine: docker-compose.yml parses with
 * Debian's docker-compose, nginx.conf passes `nginx -t` and routes as described, the Prometheus
 * config and alert rules pass promtool (and their unit tests), the dashboard and alerts name only
 * metrics the app exports (e2e/lib/metric-names.ts), and the Kubernetes manifests are complete.
 *
 * Needs root or these Debian packages: docker-compose, nginx; promtool is unpacked from the
 * prometheus package into the temp dir (not installed: no daemon, no service). Missing ones are
 * installed on first run; after that the file takes a few seconds.
 */
import { parseAllDocuments } from 'yaml';
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DASHBOARD_METRICS,
  METRIC_LABELS,
  METRIC_NAME_PATTERN,
  familyOf,
  metricNamesIn,
  selectorLabelsIn,
} from './lib/metric-names.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const at = (...parts: string[]) => join(root, ...parts);
const read = (...parts: string[]) => readFileSync(at(...parts), 'utf8');

// Values that pass the app's config checks (ADMIN_TOKEN 16+, SECRET_KEY 32+ characters).
const COMPOSE_ENV = {
  ADMIN_TOKEN: 'infra-test-admin-token-0123',
  SECRET_KEY: 'infra-test-secret-key-0123456789abcdef',
};
const SETUP_TIMEOUT = 600_000;
// Each check spawns a tool; generous, since `npm test` runs this beside the other suites.
const CHECK = { timeout: 60_000 };

// ---------------------------------------------------------------------------------------------
// tools

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], options: SpawnSyncOptions = {}): Ran {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...options });
  return {
    status: r.status,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? '') + (r.error ? `\n${r.error.message}` : ''),
  };
}

const shown = (r: Ran) => `exit ${r.status}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`;

/** The absolute path of `cmd`, looking in the sbin folders too (Debian's nginx is /usr/sbin/nginx). */
function locate(cmd: string): string | undefined {
  const r = run('sh', ['-c', 'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1"', 'sh', cmd]);
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
}

const isRoot = () => process.getuid?.() === 0;

function apt(args: string[]): Ran {
  return run('apt-get', args, {
    timeout: 300_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/** `cmd` from PATH, else `apt-get install` of `pkg` (with `apt-get update` on a first failure). */
function ensureCommand(cmd: string, pkg: string): string {
  const found = locate(cmd);
  if (found) return found;
  if (!isRoot()) {
    throw new Error(`${cmd} is missing and this is not root: run apt-get install -y --no-install-recommends ${pkg}`);
  }
  // --no-install-recommends: docker-compose recommends docker.io, which is not wanted here.
  const install = ['install', '-y', '--no-install-recommends', pkg];
  let r = apt(install);
  if (r.status !== 0 || !locate(cmd)) {
    apt(['update']);
    r = apt(install);
  }
  const installed = locate(cmd);
  if (r.status !== 0 || !installed) {
    throw new Error(`could not install ${pkg} for ${cmd} (apt-get ${install.join(' ')}):\n${shown(r)}`);
  }
  return installed;
}

/**
 * promtool from PATH, else unpacked from Debian's prometheus package into the temp dir:
 * installing the package would also set up a Prometheus service, which a test has no use for.
 */
function ensurePromtool(): string {
  const onPath = locate('promtool');
  if (onPath) return onPath;
  const dir = join(tmpdir(), 'tickwork-infra-tools');
  const bin = join(dir, 'usr', 'bin', 'promtool');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  let r = run('apt-get', ['download', 'prometheus'], { cwd: dir, timeout: 300_000 });
  if (r.status !== 0 && isRoot()) {
    apt(['update']);
    r = run('apt-get', ['download', 'prometheus'], { cwd: dir, timeout: 300_000 });
  }
  const deb = readdirSync(dir).find((f) => f.startsWith('prometheus_') && f.endsWith('.deb'));
  if (!deb) throw new Error(`could not download Debian's prometheus package for promtool:\n${shown(r)}`);
  const x = run('dpkg-deb', ['-x', join(dir, deb), dir]);
  if (x.status !== 0 || !existsSync(bin)) throw new Error(`could not unpack ${deb}:\n${shown(x)}`);
  return bin;
}

/** Every document of a YAML file, as plain data; a syntax error fails the test. */
function parseYamlDocs(text: string): unknown[] {
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw doc.errors[0];
    return doc.toJS();
  });
}

const parseYaml = (text: string): any => {
  const docs = parseYamlDocs(text);
  expect(docs).toHaveLength(1);
  return docs[0];
};

let dockerCompose: string;
let nginxBin: string;
let promtool: string;

beforeAll(async () => {
  dockerCompose = ensureCommand('docker-compose', 'docker-compose');
  nginxBin = ensureCommand('nginx', 'nginx');
  promtool = ensurePromtool();
}, SETUP_TIMEOUT);

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

describe('docker-compose.yml', CHECK, () => {
  const compose = (args: string[], env: NodeJS.ProcessEnv) =>
    run(dockerCompose, ['-f', at('docker-compose.yml'), ...args], { cwd: root, env });
  const envWithout = (...names: string[]) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...COMPOSE_ENV };
    for (const name of names) delete env[name];
    return env;
  };

  it('parses with docker-compose (no engine needed)', () => {
    const r = compose(['config', '-q'], envWithout());
    expect(r.status, shown(r)).toBe(0);
  });

  it('refuses to run without ADMIN_TOKEN or SECRET_KEY instead of using a default', () => {
    const r = compose(['config', '-q'], envWithout('ADMIN_TOKEN', 'SECRET_KEY'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ADMIN_TOKEN|SECRET_KEY/);
  });

  it('scales api and worker, starts them after migrate, and health-checks every service', () => {
    const r = compose(['config'], envWithout());
    expect(r.status, shown(r)).toBe(0);
    const { services, volumes } = parseYaml(r.stdout) as { services: Record<string, any>; volumes: object };
    expect(Object.keys(services).sort()).toEqual(
      ['api', 'grafana', 'migrate', 'nginx', 'postgres', 'prometheus', 'redis', 'worker'].sort(),
    );
    expect(volumes).toBeTruthy();

    for (const name of ['api', 'worker']) {
      const s = services[name];
      expect(s.deploy?.replicas, name).toBe(3);
      // Fixed names or host ports would stop `--scale`.
      expect(s.container_name, name).toBeUndefined();
      expect(s.ports, name).toBeUndefined();
      expect(s.command, name).toEqual([name]);
      expect(s.depends_on.migrate.condition).toBe('service_completed_successfully');
      expect(s.depends_on.postgres.condition).toBe('service_healthy');
      expect(s.depends_on.redis.condition).toBe('service_healthy');
      expect(s.environment.NODE_ENV).toBe('production');
      expect(s.environment.SECRET_KEY).toBe(COMPOSE_ENV.SECRET_KEY);
      expect(s.healthcheck.test.join(' ')).toContain(`infra/docker/healthcheck.mjs ${name} /health/ready`);
      // compose prints durations as given ("45s"): above SHUTDOWN_GRACE_MS.
      expect(Number.parseInt(s.stop_grace_period, 10) * 1000).toBeGreaterThan(Number(s.environment.SHUTDOWN_GRACE_MS));
    }
    expect(services.migrate.command).toEqual(['migrate']);
    expect(services.migrate.restart).toBe('no');
    expect(services.migrate.depends_on.postgres.condition).toBe('service_healthy');

    for (const [name, s] of Object.entries(services)) {
      if (name === 'migrate') continue; // one-shot: nothing to check once it has exited
      expect(s.healthcheck?.test, `${name} has a healthcheck`).toBeTruthy();
    }
    expect(services.postgres.image).toMatch(/^postgres:15/);
    expect(services.postgres.healthcheck.test.join(' ')).toContain('pg_isready');
    expect(services.redis.image).toMatch(/^redis:7/);
    expect(services.redis.healthcheck.test.join(' ')).toContain('redis-cli ping');
    const redisArgs = services.redis.command.join(' ');
    expect(redisArgs).toContain('--appendonly yes');
    expect(redisArgs).toContain('--maxmemory-policy noeviction');
    expect(redisArgs).toContain('--hz 100');
    expect(services.prometheus.healthcheck.test.join(' ')).toContain('/-/healthy');
    expect(services.grafana.healthcheck.test.join(' ')).toContain('/api/health');
    expect(services.nginx.depends_on.api.condition).toBe('service_healthy');

    // Every bind mount points at a file or folder of the repository.
    for (const [name, s] of Object.entries(services)) {
      for (const v of (s.volumes ?? []) as Array<string | { type: string; source: string }>) {
        const source = typeof v === 'string' ? v.split(':')[0]! : v.type === 'bind' ? v.source : '';
        if (source.startsWith('/')) expect(existsSync(source), `${name} mounts ${source}`).toBe(true);
      }
    }
    const mounts = (name: string) => JSON.stringify(services[name].volumes);
    expect(mounts('nginx')).toContain('infra/nginx/nginx.conf');
    expect(mounts('prometheus')).toContain('infra/prometheus');
    expect(mounts('grafana')).toContain('infra/grafana/provisioning');
    expect(mounts('grafana')).toContain('infra/grafana/dashboards');
  });
});

// ---------------------------------------------------------------------------------------------
// nginx

describe('infra/nginx/nginx.conf', CHECK, () => {
  const conf = () => read('infra', 'nginx', 'nginx.conf');

  it('passes nginx -t without resolving the api host', () => {
    // stdout to /dev/null: `nginx -t` opens the access log, /dev/stdout, and opening it fails
    // when stdout is a socket, as spawn's pipes are (in a container it is a pipe or a file).
    const r = run(nginxBin, ['-t', '-q', '-e', 'stderr', '-c', at('infra', 'nginx', 'nginx.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    expect(r.status, shown(r)).toBe(0);
  });

  it('declares the retry and resolver policy and hides /metrics and /admin', () => {
    const text = conf();
    expect(text).toMatch(/^\s*resolver 127\.0\.0\.11\b/m);
    expect(text).toMatch(/^\s*proxy_next_upstream error timeout http_502 http_503;/m);
    expect(text).toMatch(/^\s*proxy_pass http:\/\/\$tickwork_api;/m);
    // No `user` directive: the image's and Debian's builds each default to a user they have.
    expect(text).not.toMatch(/^\s*user\b/m);
  });

  describe('routing, with the shipped file on loopback', () => {
    // The shipped file with only its environment swapped: a DNS server of our own instead of
    // Docker's, loopback ports, three "replicas" on 127.0.0.2-4, the first of which answers 503
    // on /fail, and a fourth address that DNS returns but nothing listens on.
    const replicas = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
    const dead = '127.0.0.5';
    let dir: string;
    let publicPort: number;
    let adminPort: number;
    let nginx: ReturnType<typeof spawn> | undefined;
    let nginxLog = '';
    const closers: Array<() => void> = [];

    const freePort = (host: string) =>
      new Promise<number>((done, fail) => {
        const srv = http.createServer();
        srv.once('error', fail);
        srv.listen(0, host, () => {
          const { port } = srv.address() as AddressInfo;
          srv.close(() => done(port));
        });
      });

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tickwork-nginx-'));
      const apiPort = await freePort(replicas[0]!);
      publicPort = await freePort('127.0.0.1');
      adminPort = await freePort('127.0.0.1');

      for (const ip of replicas) {
        const server = http.createServer((req, res) => {
          const status = req.url?.startsWith('/fail') && ip === replicas[0] ? 503 : 200;
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ replica: ip, url: req.url, requestId: req.headers['x-request-id'] }));
        });
        await new Promise<void>((done) => server.listen(apiPort, ip, done));
        closers.push(() => server.close());
      }

      // A DNS server answering `api` with one A record per address, like Docker's.
      const dns = dgram.createSocket('udp4');
      dns.on('message', (msg, peer) => {
        let end = 12;
        const labels: string[] = [];
        while (msg[end] !== 0 && end < msg.length) {
          labels.push(msg.subarray(end + 1, end + 1 + msg[end]!).toString());
          end += msg[end]! + 1;
        }
        end += 5; // the root label, QTYPE and QCLASS
        const answers = labels.join('.') === 'api' ? [...replicas, dead] : [];
        const header = Buffer.alloc(12);
        msg.copy(header, 0, 0, 2);
        header.writeUInt16BE(answers.length > 0 ? 0x8180 : 0x8183, 2);
        header.writeUInt16BE(1, 4);
        header.writeUInt16BE(answers.length, 6);
        const records = answers.map((ip) => {
          const rr = Buffer.alloc(16);
          rr.writeUInt16BE(0xc00c, 0); // the name, by pointer to the question
          rr.writeUInt16BE(1, 2); // A
          rr.writeUInt16BE(1, 4); // IN
          rr.writeUInt32BE(5, 6); // TTL
          rr.writeUInt16BE(4, 10);
          for (const [i, octet] of ip.split('.').entries()) rr[12 + i] = Number(octet);
          return rr;
        });
        dns.send(Buffer.concat([header, msg.subarray(12, end), ...records]), peer.port, peer.address);
      });
      await new Promise<void>((done) => dns.bind(0, '127.0.0.1', done));
      closers.push(() => dns.close());

      const swaps: Array<[RegExp, string]> = [
        [/resolver 127\.0\.0\.11\b/, `resolver 127.0.0.1:${dns.address().port}`],
        [/listen 8080\b/, `listen 127.0.0.1:${publicPort}`],
        [/listen 8081\b/, `listen 127.0.0.1:${adminPort}`],
        [/api:3000/g, `api:${apiPort}`],
        [/^pid .*;$/m, `pid ${join(dir, 'nginx.pid')};`],
        [/access_log \/dev\/stdout/, `access_log ${join(dir, 'access.log')}`],
      ];
      let text = conf();
      for (const [pattern, value] of swaps) {
        expect(text, `nginx.conf still has ${pattern}`).toMatch(pattern);
        text = text.replace(pattern, value);
      }
      writeFileSync(join(dir, 'nginx.conf'), text);

      nginx = spawn(nginxBin, ['-e', 'stderr', '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      nginx.stderr!.on('data', (chunk: Buffer) => (nginxLog += chunk.toString()));
      const deadline = Date.now() + 10_000;
      for (;;) {
        const ok = await fetch(`http://127.0.0.1:${adminPort}/nginx-health`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        if (Date.now() > deadline || nginx.exitCode !== null) throw new Error(`nginx did not start:\n${nginxLog}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }, 30_000);

    afterAll(async () => {
      if (nginx && nginx.exitCode === null) {
        const exited = new Promise((done) => nginx!.once('exit', done));
        nginx.kill('SIGQUIT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
        if (nginx.exitCode === null) nginx.kill('SIGKILL');
      }
      for (const close of closers) close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const get = async (port: number, path: string, init: RequestInit = {}) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, signal: AbortSignal.timeout(5_000) });
      const text = await res.text();
      return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
    };

    it('reaches every replica that DNS returns, and skips the one that refuses connections', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const { status, body } = await get(publicPort, '/v1/jobs');
        expect(status, nginxLog).toBe(200);
        seen.add(body.replica);
      }
      expect([...seen].sort()).toEqual(replicas);
    });

    it('retries a 503 on another replica, and never resends a POST that reached one', async () => {
      for (let i = 0; i < 20; i++) {
        const { status, body } = await get(publicPort, '/fail');
        expect(status).toBe(200);
        expect(body.replica).not.toBe(replicas[0]);
      }
      const statuses = new Set<number>();
      for (let i = 0; i < 30; i++)
        statuses.add((await get(publicPort, '/fail', { method: 'POST', body: '{}' })).status);
      expect(statuses.has(503)).toBe(true); // the POST that reached 127.0.0.2 is answered as is
    });

    it('passes a request id through, or makes one', async () => {
      expect((await get(publicPort, '/v1/x', { headers: { 'x-request-id': 'abc-123' } })).body.requestId).toBe(
        'abc-123',
      );
      expect((await get(publicPort, '/v1/x')).body.requestId).toMatch(/^[0-9a-f]{32}$/);
    });

    it('answers 404 for /metrics and /admin publicly, and serves /admin/ on the operator port', async () => {
      for (const path of [
        '/metrics',
        '/metrics/',
        '/admin',
        '/admin/queues',
        '/admin/queues/api/queues',
        '//metrics',
        '/%6detrics',
      ]) {
        expect((await get(publicPort, path)).status, path).toBe(404);
      }
      const admin = await get(adminPort, '/admin/queues');
      expect(admin.status).toBe(200);
      expect(admin.body.url).toBe('/admin/queues');
      expect((await get(adminPort, '/v1/jobs')).status).toBe(404);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Prometheus

describe('infra/prometheus', CHECK, () => {
  it('passes promtool check config (with the alert rules it loads)', () => {
    const r = run(promtool, ['check', 'config', at('infra', 'prometheus', 'prometheus.yml')]);
    expect(r.status, shown(r)).toBe(0);
  });

  it('fires each alert when it should and stays quiet otherwise (promtool test rules)', () => {
    const r = run(promtool, ['test', 'rules', 'alerts.test.yml'], { cwd: at('infra', 'prometheus') });
    expect(r.status, shown(r)).toBe(0);
  });

  it('scrapes every api and worker replica under the job names the dashboard uses', () => {
    const config = parseYaml(read('infra', 'prometheus', 'prometheus.yml'));
    const job = (name: string) => config.scrape_configs.find((c: any) => c.job_name === name);
    expect(job('tickwork-api').dns_sd_configs).toEqual([
      expect.objectContaining({ names: ['api'], type: 'A', port: 3000 }),
    ]);
    expect(job('tickwork-worker').dns_sd_configs).toEqual([
      expect.objectContaining({ names: ['worker'], type: 'A', port: 9464 }),
    ]);
  });

  it('has the alerts the runbook describes', () => {
    const rules = parseYaml(read('infra', 'prometheus', 'alerts.yml')).groups.flatMap((g: any) => g.rules);
    const byName = Object.fromEntries(rules.map((r: any) => [r.alert, r]));
    expect(byName.TickworkFireLagHigh.expr).toMatch(/histogram_quantile\(0\.99,.*tickwork_fire_lag_seconds_bucket/s);
    expect(byName.TickworkDeadRuns.expr).toContain('tickwork_runs_total{status="dead"}');
    expect(byName.TickworkNotReady.expr).toContain('tickwork_ready == 0');
    expect(byName.TickworkTargetDown.expr).toContain('up{');
    expect(byName.TickworkBacklogGrowing.expr).toMatch(/deriv\(.*tickwork_queue_jobs\{state="waiting"\}/s);
    expect(byName.TickworkBacklogGrowing.for).toBe('10m');
    const runbook = read('docs', 'operations.md').toLowerCase();
    for (const rule of rules) {
      expect(rule.annotations.runbook).toBe(`docs/operations.md#${rule.alert.toLowerCase()}`);
      expect(runbook, `docs/operations.md has a section for ${rule.alert}`).toContain(
        `### ${rule.alert.toLowerCase()}`,
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// metric names: infra/ names only what the app exports

interface Query {
  where: string;
  expr: string;
}

function dashboard(): any {
  return JSON.parse(read('infra', 'grafana', 'dashboards', 'tickwork.json'));
}

function dashboardPanels(): any[] {
  return dashboard().panels.flatMap((p: any) => [p, ...(p.panels ?? [])]);
}

function queries(): Query[] {
  const out: Query[] = [];
  for (const panel of dashboardPanels()) {
    for (const t of panel.targets ?? [])
      out.push({ where: `dashboard panel "${panel.title}" ${t.refId}`, expr: t.expr });
  }
  for (const group of parseYaml(read('infra', 'prometheus', 'alerts.yml')).groups) {
    for (const rule of group.rules) out.push({ where: `alert ${rule.alert}`, expr: rule.expr });
  }
  for (const test of parseYaml(read('infra', 'prometheus', 'alerts.test.yml')).tests) {
    for (const s of test.input_series) out.push({ where: `alert test "${test.name}"`, expr: s.series });
  }
  for (const doc of parseYamlDocs(read('infra', 'k8s', 'worker-scaledobject.yaml')) as any[]) {
    for (const t of doc.spec.triggers) out.push({ where: 'KEDA ScaledObject', expr: t.metadata.query });
  }
  return out;
}

describe('metric names (e2e/lib/metric-names.ts)', CHECK, () => {
  it('the extractor finds metrics and nothing else', () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{job="tickwork-api",route!~"/x"}[$__rate_interval]))) > 1e-3 and on (job) up offset 5m',
      ),
    ).toEqual(['http_request_duration_seconds_bucket', 'up']);
    expect(metricNamesIn('max(tickwork_queue_jobs{state="waiting"}) > 1000 and deriv(max(x_y)[10m:1m]) > 0')).toEqual([
      'tickwork_queue_jobs',
      'x_y',
    ]);
    expect(selectorLabelsIn('sum(rate(tickwork_runs_total{status="dead",trigger=~"a|b"}[5m]))')).toEqual([
      ['tickwork_runs_total', 'status'],
      ['tickwork_runs_total', 'trigger'],
    ]);
  });

  it('every query in the dashboard, alerts, alert tests and KEDA names only listed metrics', () => {
    const listed = new Set<string>(DASHBOARD_METRICS);
    const unknown: string[] = [];
    for (const { where, expr } of queries()) {
      const names = metricNamesIn(expr);
      if (names.length === 0) unknown.push(`${where}: no metric in ${expr}`);
      for (const name of names) {
        if (!METRIC_NAME_PATTERN.test(name) || !listed.has(name)) unknown.push(`${where}: ${name}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('selects only on labels the app exports', () => {
    const wrong: string[] = [];
    for (const { where, expr } of queries()) {
      for (const [metric, label] of selectorLabelsIn(expr)) {
        if (['job', 'instance', 'le'].includes(label)) continue;
        if (!(METRIC_LABELS[familyOf(metric)] ?? []).includes(label)) wrong.push(`${where}: ${metric}{${label}}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('lists nothing that infra/ does not use', () => {
    const used = new Set(queries().flatMap((q) => metricNamesIn(q.expr)));
    // A histogram counts as used when any of its series is.
    const usedFamilies = new Set([...used].map(familyOf));
    expect(DASHBOARD_METRICS.filter((m) => !usedFamilies.has(familyOf(m)))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Grafana

describe('infra/grafana', CHECK, () => {
  it('the dashboard is well-formed: ids, grid, datasource, the panels the runbook names', () => {
    const d = dashboard();
    expect(d.uid).toBe('tickwork-overview');
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    const panels = dashboardPanels();
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);

    const cells = new Set<string>();
    for (const p of panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps another panel`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
      if (p.type === 'row') continue;
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's own variable syntax, not a template.
      expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const t of p.targets) expect(t.datasource).toEqual(p.datasource);
    }
    const variable = d.templating.list.find((v: any) => v.name === 'datasource');
    const provisioned = parseYaml(read('infra', 'grafana', 'provisioning', 'datasources', 'prometheus.yml'));
    expect(variable.current.value).toBe(provisioned.datasources[0].uid);
    expect(provisioned.datasources[0].url).toBe('http://prometheus:9090');

    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t: any) => t.expr)).join('\n');
    for (const needle of [
      'sum by (route) (rate(http_request_duration_seconds_count',
      'status_code=~"5.."',
      'histogram_quantile(0.5, sum by (le, route) (rate(http_request_duration_seconds_bucket',
      'histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket',
      'histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket',
      'histogram_quantile(0.5, sum by (le) (rate(tickwork_fire_lag_seconds_bucket',
      'histogram_quantile(0.99, sum by (le) (rate(tickwork_fire_lag_seconds_bucket',
      'sum by (status) (rate(tickwork_runs_total',
      'tickwork_runs_total{status="dead"}',
      'max by (state) (tickwork_queue_jobs)',
      'max(tickwork_schedulers)',
      'tickwork_reconcile_repairs_total',
    ]) {
      expect(exprs, needle).toContain(needle);
    }
  });

  it('every dashboard query is valid PromQL (promtool, as recording rules)', () => {
    const rules = dashboardPanels().flatMap((p) =>
      (p.targets ?? []).map((t: any) => ({
        record: `dashboard:panel_${p.id}_${t.refId}`,
        expr: String(t.expr).replaceAll('$__rate_interval', '1m').replaceAll('$__range', '6h'),
      })),
    );
    const dir = mkdtempSync(join(tmpdir(), 'tickwork-dashboard-'));
    try {
      const file = join(dir, 'dashboard-rules.yml');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] })); // JSON is YAML
      const r = run(promtool, ['check', 'rules', file]);
      expect(r.status, shown(r)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the dashboard provider reads the folder compose mounts the dashboards into', () => {
    const providers = parseYaml(read('infra', 'grafana', 'provisioning', 'dashboards', 'dashboards.yml')).providers;
    expect(providers[0].options.path).toBe('/var/lib/grafana/dashboards');
    expect(read('docker-compose.yml')).toContain('./infra/grafana/dashboards:/var/lib/grafana/dashboards:ro');
  });
});

// ---------------------------------------------------------------------------------------------
// Kubernetes

describe('infra/k8s', CHECK, () => {
  const dir = at('infra', 'k8s');
  const manifests = () =>
    readdirSync(dir)
      .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
      .flatMap((file) =>
        (parseYamlDocs(readFileSync(join(dir, file), 'utf8')) as any[]).filter(Boolean).map((doc) => ({ file, doc })),
      );
  const ofKind = (kind: string) =>
    manifests()
      .filter((m) => m.doc.kind === kind)
      .map((m) => m.doc);
  const one = (kind: string, name: string) => ofKind(kind).find((d) => d.metadata.name === name);

  it('every manifest parses, is namespace-agnostic and is listed in kustomization.yaml', () => {
    const kustomization = parseYaml(read('infra', 'k8s', 'kustomization.yaml'));
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
    for (const { file, doc } of manifests()) {
      expect(doc.apiVersion, file).toBeTruthy();
      expect(doc.kind, file).toBeTruthy();
      expect(doc.metadata?.name, file).toBeTruthy();
      expect(doc.metadata.namespace, `${file} sets no namespace`).toBeUndefined();
    }
    expect(kustomization.namespace).toBeUndefined();
  });

  it('every Deployment has readiness and liveness probes and outlasts SHUTDOWN_GRACE_MS', () => {
    const config = one('ConfigMap', 'tickwork-config');
    const graceMs = Number(config.data.SHUTDOWN_GRACE_MS);
    expect(graceMs).toBe(30_000);
    const deployments = ofKind('Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['tickwork-api', 'tickwork-worker']);
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      expect(pod.terminationGracePeriodSeconds, d.metadata.name).toBeGreaterThan(30);
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(graceMs);
      for (const c of pod.containers) {
        expect(c.readinessProbe?.httpGet?.path, `${d.metadata.name}/${c.name}`).toBe('/health/ready');
        expect(c.livenessProbe?.httpGet?.path, `${d.metadata.name}/${c.name}`).toBe('/health/live');
        expect(c.envFrom).toEqual(
          expect.arrayContaining([
            { configMapRef: { name: 'tickwork-config' } },
            { secretRef: { name: 'tickwork-secrets' } },
          ]),
        );
      }
      expect(d.spec.selector.matchLabels).toEqual(
        Object.fromEntries(
          Object.entries(d.spec.template.metadata.labels).filter(([k]) => k in d.spec.selector.matchLabels),
        ),
      );
    }
    const api = one('Deployment', 'tickwork-api');
    expect(api.spec.replicas).toBe(3);
    const apiContainer = api.spec.template.spec.containers[0];
    expect(apiContainer.args).toEqual(['api']);
    expect(apiContainer.ports).toEqual([{ name: 'http', containerPort: 3000 }]);
    expect(apiContainer.resources.requests).toBeTruthy();

    const worker = one('Deployment', 'tickwork-worker');
    const workerContainer = worker.spec.template.spec.containers[0];
    expect(workerContainer.args).toEqual(['worker']);
    expect(workerContainer.ports).toEqual([{ name: 'metrics', containerPort: 9464 }]);
    expect(workerContainer.readinessProbe.httpGet.port).toBe('metrics');
    expect(workerContainer.livenessProbe.httpGet.port).toBe('metrics');
    expect(workerContainer.resources.requests).toBeTruthy();
    expect(worker.spec.replicas, 'KEDA owns the worker count').toBeUndefined();
  });

  it('has the migrate Job, Service, Ingress, PDBs and the KEDA ScaledObject', () => {
    const job = one('Job', 'tickwork-migrate');
    expect(job.spec.template.spec.containers[0].args).toEqual(['migrate']);
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
    // A release applies these first with `-l tickwork/step=migrate` (kustomization.yaml).
    for (const [kind, name] of [
      ['Job', 'tickwork-migrate'],
      ['ConfigMap', 'tickwork-config'],
      ['Secret', 'tickwork-secrets'],
    ]) {
      expect(one(kind!, name!).metadata.labels['tickwork/step'], `${kind} ${name}`).toBe('migrate');
    }
    expect(one('Secret', 'tickwork-secrets').stringData.SECRET_KEY).toBe('');

    const service = one('Service', 'tickwork-api');
    expect(service.spec.selector).toEqual(one('Deployment', 'tickwork-api').spec.selector.matchLabels);
    const paths = one('Ingress', 'tickwork-api').spec.rules.flatMap((r: any) => r.http.paths.map((p: any) => p.path));
    expect(paths).toEqual(expect.arrayContaining(['/v1', '/docs', '/openapi.json']));
    for (const path of paths) expect(path, 'ingress path').not.toMatch(/^\/($|metrics|admin)/);

    for (const name of ['tickwork-api', 'tickwork-worker']) {
      const pdb = one('PodDisruptionBudget', name);
      expect(pdb.spec.selector.matchLabels).toEqual(one('Deployment', name).spec.selector.matchLabels);
    }
    const scaled = one('ScaledObject', 'tickwork-worker');
    expect(scaled.spec.scaleTargetRef.name).toBe('tickwork-worker');
    expect(scaled.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    const trigger = scaled.spec.triggers[0];
    expect(trigger.type).toBe('prometheus');
    expect(trigger.metadata.query).toContain('tickwork_queue_jobs{state="waiting"}');
  });
});

// ---------------------------------------------------------------------------------------------
// the image's entry point

describe('Dockerfile and infra/docker', CHECK, () => {
  it('builds on node:24-slim with the pinned pnpm and runs as node', () => {
    const dockerfile = read('Dockerfile');
    const pnpm = JSON.parse(read('package.json')).packageManager.replace(/^pnpm@/, '');
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24-slim$/m);
    expect(dockerfile).toContain(`ARG PNPM_VERSION=${pnpm}`);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toContain('ENTRYPOINT ["/app/infra/node/launch.sh"]');
    const ignore = read('.dockerignore');
    for (const entry of ['**/node_modules', '**/.tooling', '**/.git', '**/test-output', '**/.env'])
      expect(ignore).toContain(entry);
  });

  it('the entry point is a valid shell script', () => {
    expect(run('sh', ['-n', at('infra', 'node', 'launch.sh')]).status).toBe(0);
  });

  it('healthcheck.mjs passes on 2xx and fails on 503 or a closed port', async () => {
    let status = 200;
    const server = http.createServer((req, res) => {
      res.writeHead(req.url === '/health/ready' ? status : 404);
      res.end();
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const port = String((server.address() as AddressInfo).port);
    // Asynchronous: the server answers from this process's event loop.
    const probe = (role: string, env: Record<string, string>) =>
      new Promise<number | null>((done) => {
        const child = spawn(process.execPath, [at('infra', 'docker', 'healthcheck.mjs'), role, '/health/ready'], {
          env: { ...process.env, ...env },
          stdio: 'ignore',
        });
        child.on('exit', (code) => done(code));
      });
    try {
      expect(await probe('api', { PORT: port })).toBe(0);
      expect(await probe('worker', { WORKER_PORT: port })).toBe(0);
      status = 503;
      expect(await probe('api', { PORT: port })).toBe(1);
    } finally {
      await new Promise((done) => server.close(done));
    }
    expect(await probe('api', { PORT: port })).toBe(1);
  });
});
