/**
 * The deployment files checked by the tools that read them, without a container engine:
 * docker-compose.yml by Debian's docker-compose (`config`), nginx.conf by nginx (`nginx -t`, then
 * routing real requests to loopback replicas), the Prometheus config and alert rules by promtool
 * (`check config`, `test rules`), the dashboard's queries by promtool as recording rules, the
 * Kubernetes manifests rendered by `kubectl kustomize` and validated against the Kubernetes (and
 * KEDA) API schemas (kubernetes-models). The image itself is built and run by
 * `npm run test:image` (scripts/test-image.ts), which needs an engine and is not part of npm test.
 *
 * Missing tools are installed (as root) from Debian's packages: docker-compose, nginx; promtool
 * is unpacked from the prometheus package into the temp dir (not installed: no daemon, no
 * service). kubectl 1.21 or newer (its built-in kustomize reads `labels:`) must be on PATH.
 */
import { parseAllDocuments } from 'yaml';
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
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
import { IMAGE, freePort } from '@tickwork/testkit';

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
  // Another test process may be installing a package at the same moment: wait for dpkg's lock.
  return run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], {
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

/**
 * kubectl from PATH. Debian's own (kubernetes-client) is 1.20, whose kustomize is too old for
 * kustomization.yaml; the Kubernetes project's packages or a cloud SDK bring a current one.
 */
function ensureKubectl(): string {
  const found = locate('kubectl');
  const version = found ? run(found, ['version', '--client', '--output=json']) : undefined;
  const minor = version?.status === 0 ? Number(JSON.parse(version.stdout).clientVersion?.minor?.replace(/\D/g, '')) : 0;
  if (!found || minor < 21) {
    throw new Error(
      `kubectl 1.21 or newer is needed to render infra/k8s (found ${found ? `1.${minor}` : 'none'}): ` +
        'install it from the Kubernetes project (https://kubernetes.io/docs/tasks/tools/) or a cloud SDK',
    );
  }
  return found;
}

let dockerCompose: string;
let nginxBin: string;
let promtool: string;
let kubectl: string;

beforeAll(async () => {
  dockerCompose = ensureCommand('docker-compose', 'docker-compose');
  nginxBin = ensureCommand('nginx', 'nginx');
  promtool = ensurePromtool();
  kubectl = ensureKubectl();
}, SETUP_TIMEOUT);

/** What docker-compose makes of docker-compose.yml (interpolated, anchors merged). */
function composeConfig(): { services: Record<string, any>; volumes: object; networks?: object } {
  const r = run(dockerCompose, ['-f', at('docker-compose.yml'), 'config'], {
    cwd: root,
    env: { ...process.env, ...COMPOSE_ENV },
  });
  expect(r.status, shown(r)).toBe(0);
  return parseYaml(r.stdout);
}

/** The compose services of one role (`api`, `worker`), by the command they run. */
function composeReplicas(role: 'api' | 'worker'): Array<[name: string, service: any]> {
  return Object.entries(composeConfig().services).filter(([, s]) => s.command?.[0] === role);
}

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

  it('runs every service on the host network, so compose makes no network of its own', () => {
    const { services, networks } = composeConfig();
    expect(networks).toBeUndefined();
    for (const [name, s] of Object.entries(services)) {
      expect(s.network_mode, name).toBe('host');
      // Published ports and networks mean nothing on the host network.
      expect(s.ports, name).toBeUndefined();
      expect(s.networks, name).toBeUndefined();
    }
  });

  it('runs the image npm run test:image builds, in replicas on ports of their own, after migrate', () => {
    const { services, volumes } = composeConfig();
    expect(Object.keys(services).sort()).toEqual(
      [
        'api-1',
        'api-2',
        'grafana',
        'migrate',
        'nginx',
        'postgres',
        'prometheus',
        'redis',
        'worker-1',
        'worker-2',
      ].sort(),
    );
    expect(volumes).toBeTruthy();
    expect(services.migrate.image).toBe(IMAGE);
    expect(services.migrate.command).toEqual(['migrate']);
    expect(services.migrate.restart).toBe('no');
    expect(services.migrate.depends_on.postgres.condition).toBe('service_healthy');

    for (const [role, portVariable] of [
      ['api', 'PORT'],
      ['worker', 'WORKER_PORT'],
    ] as const) {
      const replicas = composeReplicas(role);
      expect(replicas.length, role).toBeGreaterThanOrEqual(2);
      const ports = replicas.map(([, s]) => s.environment[portVariable]);
      expect(new Set(ports).size, `${role} replicas listen on ports of their own`).toBe(replicas.length);
      for (const [name, s] of replicas) {
        expect(s.image, name).toBe(IMAGE);
        expect(s.depends_on.migrate.condition).toBe('service_completed_successfully');
        expect(s.depends_on.postgres.condition).toBe('service_healthy');
        expect(s.depends_on.redis.condition).toBe('service_healthy');
        expect(s.environment.NODE_ENV).toBe('production');
        expect(s.environment.HOST, `${name} listens on loopback, behind nginx`).toBe('127.0.0.1');
        expect(s.environment.SECRET_KEY).toBe(COMPOSE_ENV.SECRET_KEY);
        expect(s.healthcheck.test.join(' ')).toContain(`infra/docker/healthcheck.mjs ${role} /health/ready`);
        // compose prints durations as given ("45s"): above SHUTDOWN_GRACE_MS.
        expect(Number.parseInt(s.stop_grace_period, 10) * 1000).toBeGreaterThan(
          Number(s.environment.SHUTDOWN_GRACE_MS),
        );
      }
    }
  });

  it('health-checks every long-running service and mounts only files of the repository', () => {
    const { services } = composeConfig();
    for (const [name, s] of Object.entries(services)) {
      if (name === 'migrate') continue; // one-shot: nothing to check once it has exited
      expect(s.healthcheck?.test, `${name} has a healthcheck`).toBeTruthy();
    }
    expect(services.postgres.image).toMatch(/^postgres:15/);
    expect(services.redis.image).toMatch(/^redis:7/);
    const redisArgs = services.redis.command.join(' ');
    expect(redisArgs).toContain('--appendonly yes');
    expect(redisArgs).toContain('--maxmemory-policy noeviction');
    expect(redisArgs).toContain('--hz 100');
    const [api] = composeReplicas('api')[0]!;
    expect(services.nginx.depends_on[api].condition).toBe('service_healthy');

    for (const [name, s] of Object.entries(services)) {
      for (const v of (s.volumes ?? []) as Array<string | { type: string; source: string }>) {
        const source = typeof v === 'string' ? v.split(':')[0]! : v.type === 'bind' ? v.source : '';
        if (source.startsWith('/')) expect(existsSync(source), `${name} mounts ${source}`).toBe(true);
      }
    }
    const mounts = (name: string) => JSON.stringify(services[name].volumes);
    expect(mounts('nginx')).toContain(`${at('infra', 'nginx', 'nginx.conf')}:/etc/nginx/nginx.conf`);
    expect(mounts('prometheus')).toContain(`${at('infra', 'prometheus')}:/etc/prometheus`);
    expect(mounts('grafana')).toContain(`${at('infra', 'grafana', 'provisioning')}:/etc/grafana/provisioning`);
    const provider = parseYaml(read('infra', 'grafana', 'provisioning', 'dashboards', 'dashboards.yml')).providers[0];
    expect(mounts('grafana')).toContain(`${at('infra', 'grafana', 'dashboards')}:${provider.options.path}`);
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

  describe('routing, with the shipped file on loopback', () => {
    // The shipped file with only its ports swapped: every api replica of docker-compose.yml is a
    // server of this test's on a free loopback port (the first answers 503 on /fail), and the
    // public and operator ports are free ones too.
    let replicas: Array<{ name: string; port: number; close: () => void }>;
    let dir: string;
    let publicPort: number;
    let adminPort: number;
    let nginx: ReturnType<typeof spawn> | undefined;
    let nginxLog = '';

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tickwork-nginx-'));
      [publicPort, adminPort] = await Promise.all([freePort(), freePort()]);
      const swaps: Array<[RegExp, string]> = [
        [/listen 8080\b/, `listen 127.0.0.1:${publicPort}`],
        [/listen 127\.0\.0\.1:8081\b/, `listen 127.0.0.1:${adminPort}`],
        [/^pid .*;$/m, `pid ${join(dir, 'nginx.pid')};`],
        [/access_log \/dev\/stdout/, `access_log ${join(dir, 'access.log')}`],
      ];
      replicas = [];
      for (const [name, service] of composeReplicas('api')) {
        const first = replicas.length === 0;
        const server = http.createServer((req, res) => {
          res.writeHead(req.url?.startsWith('/fail') && first ? 503 : 200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ replica: name, url: req.url, requestId: req.headers['x-request-id'] }));
        });
        await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
        const { port } = server.address() as AddressInfo;
        replicas.push({
          name,
          port,
          close: () => {
            server.closeAllConnections();
            server.close();
          },
        });
        swaps.push([new RegExp(`server 127\\.0\\.0\\.1:${service.environment.PORT}\\b`), `server 127.0.0.1:${port}`]);
      }
      let text = conf();
      for (const [pattern, value] of swaps) {
        expect(text, `nginx.conf has ${pattern} (the upstream lists every compose api replica)`).toMatch(pattern);
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
      for (const replica of replicas ?? []) replica.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const get = async (port: number, path: string, init: RequestInit = {}) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, signal: AbortSignal.timeout(5_000) });
      const text = await res.text();
      return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
    };

    it('reaches every replica in the upstream', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const { status, body } = await get(publicPort, '/v1/jobs');
        expect(status, nginxLog).toBe(200);
        seen.add(body.replica);
      }
      expect([...seen].sort()).toEqual(replicas.map((r) => r.name).sort());
    });

    it('never resends a POST that reached a replica, and retries a 503 GET on another one', async () => {
      // POSTs first: the 503 a POST gets also marks that replica failed for fail_timeout.
      const statuses = new Set<number>();
      for (let i = 0; i < 10; i++)
        statuses.add((await get(publicPort, '/fail', { method: 'POST', body: '{}' })).status);
      expect(statuses.has(503)).toBe(true); // the POST that reached the first replica is answered as is
      for (let i = 0; i < 10; i++) {
        const { status, body } = await get(publicPort, '/fail');
        expect(status).toBe(200);
        expect(body.replica).not.toBe(replicas[0]!.name);
      }
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

    it('moves requests off a replica that refuses connections', async () => {
      replicas[0]!.close();
      for (let i = 0; i < 10; i++) {
        const { status, body } = await get(publicPort, '/v1/jobs');
        expect(status, nginxLog).toBe(200);
        expect(body.replica).not.toBe(replicas[0]!.name);
      }
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

  it('scrapes every compose api and worker replica under the job names the dashboard uses', () => {
    const config = parseYaml(read('infra', 'prometheus', 'prometheus.yml'));
    const targets = (name: string) =>
      config.scrape_configs
        .find((c: any) => c.job_name === name)
        .static_configs.flatMap((c: any) => c.targets)
        .sort();
    const replicaTargets = (role: 'api' | 'worker', variable: string) =>
      composeReplicas(role)
        .map(([, s]) => `127.0.0.1:${s.environment[variable]}`)
        .sort();
    expect(targets('tickwork-api')).toEqual(replicaTargets('api', 'PORT'));
    expect(targets('tickwork-worker')).toEqual(replicaTargets('worker', 'WORKER_PORT'));
  });

  it('tests every alert (promtool test rules above) and gives each a runbook section', () => {
    const rules = parseYaml(read('infra', 'prometheus', 'alerts.yml')).groups.flatMap((g: any) => g.rules);
    const tested = new Set(
      parseYaml(read('infra', 'prometheus', 'alerts.test.yml')).tests.flatMap((t: any) =>
        (t.alert_rule_test ?? []).map((a: any) => a.alertname),
      ),
    );
    expect(rules.map((r: any) => r.alert).filter((name: string) => !tested.has(name))).toEqual([]);
    // No tool reads a runbook: the link and the heading it points at are compared as text.
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
        'histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket' +
          '{job="tickwork-api",route!~"/x"}[$__rate_interval]))) > 1e-3 and on (job) up offset 5m',
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
    const listen = composeConfig()
      .services.prometheus.command.find((arg: string) => arg.startsWith('--web.listen-address='))
      .split('=')[1];
    expect(provisioned.datasources[0].url).toBe(`http://${listen}`);

    // promtool (below) checks that each query is valid PromQL; what a panel is meant to show no
    // tool can check, so the queries the runbook's panels rest on are pinned as text.
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

  it('the error panels show 0, not "No data", while the api answers no errors (promtool test rules)', () => {
    const errorQuery = /status_code=~"[45]\.\."/;
    const errorPanels = dashboardPanels().filter((p) => (p.targets ?? []).some((t: any) => errorQuery.test(t.expr)));
    expect(errorPanels.length).toBeGreaterThanOrEqual(2);
    const rules = errorPanels.flatMap((p) =>
      p.targets
        .filter((t: any) => errorQuery.test(t.expr))
        .map((t: any) => ({
          record: `dashboard:panel_${p.id}_${t.refId}`,
          expr: String(t.expr).replaceAll('$__rate_interval', '1m'),
        })),
    );
    const dir = mkdtempSync(join(tmpdir(), 'tickwork-dashboard-'));
    try {
      writeFileSync(join(dir, 'rules.yml'), JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      // Only 200s: one route answering 1 request/s for 10 minutes.
      const series = 'http_request_duration_seconds_count{job="tickwork-api",route="/v1/jobs",status_code="200"}';
      const test = {
        rule_files: ['rules.yml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [{ series, values: '0+60x10' }],
            promql_expr_test: rules.map((r: any) => ({
              expr: r.record,
              eval_time: '10m',
              // A panel grouped by route shows 0 for the route; one without grouping, a bare 0.
              exp_samples: [
                { labels: r.expr.includes('by (route)') ? `${r.record}{route="/v1/jobs"}` : r.record, value: 0 },
              ],
            })),
          },
        ],
      };
      writeFileSync(join(dir, 'test.yml'), JSON.stringify(test));
      const r = run(promtool, ['test', 'rules', 'test.yml'], { cwd: dir });
      expect(r.status, shown(r)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Kubernetes

describe('infra/k8s', CHECK, () => {
  const dir = at('infra', 'k8s');
  /** What `kubectl apply -k infra/k8s` would send: kustomize's output, one object per document. */
  const rendered = (): any[] => {
    const r = run(kubectl, ['kustomize', dir]);
    expect(r.status, shown(r)).toBe(0);
    return (parseYamlDocs(r.stdout) as any[]).filter(Boolean);
  };
  const ofKind = (kind: string) => rendered().filter((d) => d.kind === kind);
  const one = (kind: string, name: string) => ofKind(kind).find((d) => d.metadata.name === name);

  it('renders with kubectl kustomize, every file listed, namespace-agnostic', () => {
    const kustomization = parseYaml(read('infra', 'k8s', 'kustomization.yaml'));
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
    const docs = rendered();
    const documentsInFiles = files.flatMap((f) => (parseYamlDocs(read('infra', 'k8s', f)) as any[]).filter(Boolean));
    expect(docs).toHaveLength(documentsInFiles.length);
    for (const doc of docs) expect(doc.metadata.namespace, `${doc.kind} ${doc.metadata.name}`).toBeUndefined();
  });

  it('every object is valid against the Kubernetes and KEDA API schemas', async () => {
    const invalid: string[] = [];
    for (const doc of rendered()) {
      const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : ['', doc.apiVersion];
      const module =
        group === 'keda.sh'
          ? `@kubernetes-models/keda/keda.sh/${version}/${doc.kind}`
          : `kubernetes-models/${group ? `${group}/` : ''}${version}/${doc.kind}`;
      const Model = (await import(module))[doc.kind];
      try {
        new Model(doc).validate();
      } catch (error) {
        invalid.push(`${doc.kind} ${doc.metadata.name}: ${(error as Error).message}`);
      }
    }
    expect(invalid).toEqual([]);
  });

  it('runs the image npm run test:image builds', () => {
    const images = rendered().flatMap((d) =>
      (d.spec?.template?.spec.containers ?? []).map((c: any) => [`${d.kind} ${d.metadata.name}`, c.image]),
    );
    expect(images.length).toBe(3);
    for (const [where, image] of images) expect(image, where).toBe(IMAGE);
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
  it('installs the pnpm that package.json pins', () => {
    // `npm run test:image` builds the image (it needs an engine, so npm test does not); the one
    // value of the Dockerfile that can drift from the repository without breaking that build
    // is compared as text.
    const pnpm = JSON.parse(read('package.json')).packageManager.replace(/^pnpm@/, '');
    expect(read('Dockerfile')).toMatch(new RegExp(`^ARG PNPM_VERSION=${pnpm.replaceAll('.', '\\.')}$`, 'm'));
  });

  it('the entry point is a valid shell script', () => {
    const r = run('sh', ['-n', at('infra', 'node', 'launch.sh')]);
    expect(r.status, shown(r)).toBe(0);
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
