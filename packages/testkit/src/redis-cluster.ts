/**
 * A Redis Cluster of a test's own: `masters` masters and as many replicas each, every node a
 * `redis-server --cluster-enabled yes` on free loopback ports (its client and cluster-bus ports),
 * joined by `redis-cli --cluster create … --cluster-replicas`, with `cluster-node-timeout 2000`
 * so a dead master's replica takes over within seconds. It is handed out once every slot is
 * served and every replica has finished its first sync (a replica that never synced refuses to
 * take over). Nothing is saved to disk; each node's cluster file and log (`redis-<port>.log`)
 * live in a temporary directory removed on stop, copied out when a wait fails.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis } from 'ioredis';
import { freePort } from './ports.ts';

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  /** `127.0.0.1:<port>` */
  address: string;
  child: ChildProcess;
}

export interface OwnRedisCluster {
  /** Every node, `host:port`, comma-separated: what REDIS_CLUSTER_NODES takes. */
  nodesEnv: string;
  /** With `tls: true`: the nodes speak TLS only (clients, cluster bus, replication), with this CA. */
  tls: ClusterTls | undefined;
  nodes: ClusterNode[];
  /** The node serving a key's slot as master now. */
  masterOf(key: string): Promise<ClusterNode>;
  /** The masters now, by the slots they serve. */
  masters(): Promise<Array<{ node: ClusterNode; slots: Array<[number, number]> }>>;
  /** kill -9 of one node (the process dies; its replica, if it was a master, takes over). */
  kill(node: ClusterNode): void;
  /**
   * Resolves once every live node says `cluster_state:ok` and each slot has a live master. On a
   * timeout it throws with `describe()` in the message, and the nodes' logs copied to a kept folder.
   */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /**
   * Resolves once every live replica has its master's data and follows its stream
   * (`master_link_status:up`, no sync in progress, `state=online` on the master's side).
   */
  waitInSync(timeoutMs?: number): Promise<void>;
  /**
   * What the cluster says now, for a failure's message: per node, alive or not, its CLUSTER INFO
   * and INFO replication lines that matter, one node's CLUSTER NODES, and the tail of each log.
   */
  describe(logLines?: number): Promise<string>;
  /** Each node's log file (`redis-<port>.log`), removed on stop unless copied out. */
  logOf(node: ClusterNode): string;
  /** An ioredis Cluster client on the nodes (the caller closes it). */
  client(): Cluster;
  /** Stops every node and removes their files. */
  stop(): Promise<void>;
}

async function answers(port: number, tls: ConnectionOptions | undefined): Promise<boolean> {
  const probe = new Redis({
    port,
    host: '127.0.0.1',
    ...(tls ? { tls } : {}),
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/** One command on one node, without retries: a dead node fails at once. */
async function query(port: number, tls: ConnectionOptions | undefined, ...args: string[]): Promise<unknown> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    ...(tls ? { tls } : {}),
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
  });
  client.on('error', () => {});
  try {
    return await client.call(args[0]!, ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

/** The one name a TLS cluster's certificate is issued for (its nodes are announced as 127.0.0.1). */
export const CLUSTER_TLS_NAME = 'redis.tickwork.test';

export interface ClusterTls {
  /** The certificate authority's PEM (what a client must trust) and its file. */
  ca: string;
  caFile: string;
  /** The name the nodes' certificate is valid for: not their address. */
  servername: string;
  certFile: string;
  keyFile: string;
}

/** A CA and one server certificate for CLUSTER_TLS_NAME only (no address in it), made by openssl. */
function makeCertificates(dir: string): ClusterTls {
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=tickwork-test-ca',
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.crt'),
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    `/CN=${CLUSTER_TLS_NAME}`,
    '-keyout',
    at('node.key'),
    '-out',
    at('node.csr'),
  );
  writeFileSync(at('node.ext'), `subjectAltName=DNS:${CLUSTER_TLS_NAME}\n`);
  openssl(
    'x509',
    '-req',
    '-in',
    at('node.csr'),
    '-CA',
    at('ca.crt'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    at('node.ext'),
    '-out',
    at('node.crt'),
  );
  return {
    ca: readFileSync(at('ca.crt'), 'utf8'),
    caFile: at('ca.crt'),
    servername: CLUSTER_TLS_NAME,
    certFile: at('node.crt'),
    keyFile: at('node.key'),
  };
}

/** The CLUSTER INFO and INFO replication fields `describe()` shows. */
const DESCRIBED = new RegExp(
  `^(${[
    'cluster_state',
    'cluster_current_epoch',
    'cluster_my_epoch',
    'role',
    'master_port',
    'master_link_status',
    'master_link_down_since_seconds',
    'master_sync_in_progress',
    'master_repl_offset',
    'connected_slaves',
    'slave\\d+',
    'error',
  ].join('|')}):`,
);

/** Starts the cluster and waits until it serves every slot. */
export async function startOwnRedisCluster(
  options: { masters?: number; replicas?: number; tls?: boolean } = {},
): Promise<OwnRedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const dir = mkdtempSync(join(tmpdir(), 'tickwork-redis-cluster-'));
  const tls = options.tls ? makeCertificates(dir) : undefined;
  const tlsOptions: ConnectionOptions | undefined = tls ? { ca: tls.ca, servername: tls.servername } : undefined;
  const ask = async (port: number, ...args: string[]) => String(await query(port, tlsOptions, ...args));
  const nodes: ClusterNode[] = [];
  const stop = async () => {
    await Promise.all(
      nodes.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  const taken = new Set<number>();
  // Each free port is free only until it is used: one drawn twice (a node's client port and
  // another's bus port) makes the second server fail with "Address already in use".
  const draw = async () => {
    let drawn = await freePort();
    while (taken.has(drawn)) drawn = await freePort();
    taken.add(drawn);
    return drawn;
  };
  const spawnNode = async (): Promise<ClusterNode> => {
    const port = await draw();
    const busPort = await draw();
    const child = spawn(
      'redis-server',
      [
        ...(tls
          ? [
              '--port',
              '0',
              '--tls-port',
              String(port),
              '--tls-cluster',
              'yes',
              '--tls-replication',
              'yes',
              '--tls-cert-file',
              tls.certFile,
              '--tls-key-file',
              tls.keyFile,
              '--tls-ca-cert-file',
              tls.caFile,
              '--tls-auth-clients',
              'no',
            ]
          : ['--port', String(port)]),
        '--cluster-port',
        String(busPort),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--maxmemory-policy',
        'noeviction',
        // A replica's first full sync starts at once, not 5 s later (the default waits for more
        // replicas to share one transfer; each master here has its own).
        '--repl-diskless-sync-delay',
        '0',
        '--logfile',
        join(dir, `redis-${port}.log`),
      ],
      { stdio: 'ignore' },
    );
    return { port, address: `127.0.0.1:${port}`, child };
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) nodes.push(await spawnNode());
    const deadline = Date.now() + 15_000;
    for (let i = 0; i < nodes.length; i++) {
      let restarts = 0;
      while (!(await answers(nodes[i]!.port, tlsOptions))) {
        const node = nodes[i]!;
        if (node.child.exitCode !== null) {
          const log = join(dir, `redis-${node.port}.log`);
          const tail = existsSync(log) ? readFileSync(log, 'utf8').trimEnd().split('\n').slice(-5).join('\n') : '';
          // Another process took one of its ports between the draw and the bind: new ports.
          if (/Address already in use/.test(tail) && restarts++ < 3) {
            nodes[i] = await spawnNode();
            continue;
          }
          throw new Error(`redis-server on ${node.port} exited (${node.child.exitCode}):\n${tail}`);
        }
        if (Date.now() > deadline) throw new Error(`redis-server on ${node.port} did not answer`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await run('redis-cli', [
      ...(tls ? ['--tls', '--cacert', tls.caFile] : []),
      '--cluster',
      'create',
      ...nodes.map((node) => node.address),
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ]);
  } catch (error) {
    await stop();
    throw error;
  }
  /** An error saying what the cluster looks like, its logs copied where stop() leaves them. */
  const failure = async (what: string) => {
    const kept = mkdtempSync(join(tmpdir(), 'tickwork-redis-cluster-failure-'));
    cpSync(dir, kept, { recursive: true });
    return new Error(`the Redis Cluster is ${what} (logs kept in ${kept})\n${await cluster.describe()}`);
  };
  const live = () => nodes.filter((node) => node.child.exitCode === null && node.child.signalCode === null);
  const byPort = (port: number) => nodes.find((node) => node.port === port)!;
  const cluster: OwnRedisCluster = {
    nodesEnv: nodes.map((node) => node.address).join(','),
    tls,
    nodes,
    async masters() {
      const slots = (await query(live()[0]!.port, tlsOptions, 'CLUSTER', 'SLOTS')) as Array<
        [number, number, [string, number]]
      >;
      const found = new Map<number, Array<[number, number]>>();
      for (const [from, to, [, port]] of slots) found.set(port, [...(found.get(port) ?? []), [from, to]]);
      return [...found].map(([port, ranges]) => ({ node: byPort(port), slots: ranges }));
    },
    async masterOf(key) {
      const slot = Number(await ask(live()[0]!.port, 'CLUSTER', 'KEYSLOT', key));
      for (const { node, slots } of await cluster.masters()) {
        if (slots.some(([from, to]) => slot >= from && slot <= to)) return node;
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    kill(node) {
      node.child.kill('SIGKILL');
    },
    logOf(node) {
      return join(dir, `redis-${node.port}.log`);
    },
    async describe(logLines = 40) {
      const lines: string[] = [];
      const alive = live();
      for (const node of nodes) {
        if (!alive.includes(node)) {
          lines.push(`node ${node.port}: dead`);
          continue;
        }
        const [info, replication] = await Promise.all([
          ask(node.port, 'CLUSTER', 'INFO').catch((e: unknown) => `error ${String(e)}`),
          ask(node.port, 'INFO', 'replication').catch((e: unknown) => `error ${String(e)}`),
        ]);
        const picked = `${info}\n${replication}`.split(/\r?\n/).filter((line) => DESCRIBED.test(line));
        lines.push(`node ${node.port}: ${picked.join(' ')}`);
      }
      if (alive[0]) {
        const view = await ask(alive[0].port, 'CLUSTER', 'NODES').catch((e: unknown) => `error ${String(e)}`);
        lines.push(`CLUSTER NODES from ${alive[0].port}:`, view.trim());
      }
      for (const node of nodes) {
        const log = cluster.logOf(node);
        const tail = existsSync(log) ? readFileSync(log, 'utf8').trimEnd().split('\n').slice(-logLines) : [];
        lines.push(`log of ${node.port} (last ${tail.length} lines):`, ...tail.map((line) => `  ${line}`));
      }
      return lines.join('\n');
    },
    async waitHealthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const states = await Promise.all(live().map((node) => ask(node.port, 'CLUSTER', 'INFO').catch(() => '')));
        const ok = states.every((info) => /cluster_state:ok/.test(info));
        const served = ok && (await cluster.masters().catch(() => [])).every(({ node }) => live().includes(node));
        const covered =
          served &&
          (await cluster.masters()).reduce(
            (sum, { slots }) => sum + slots.reduce((s, [a, b]) => s + b - a + 1, 0),
            0,
          ) === 16_384;
        if (covered) return;
        if (Date.now() > deadline) throw await failure(`not healthy after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async waitInSync(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const states = await Promise.all(live().map((node) => ask(node.port, 'INFO', 'replication').catch(() => '')));
        const replicas = states.filter((info) => /^role:slave/m.test(info));
        const synced = replicas.filter(
          (info) => /^master_link_status:up/m.test(info) && /^master_sync_in_progress:0/m.test(info),
        );
        const online = states
          .filter((info) => /^role:master/m.test(info))
          .every((info) => !/^slave\d+:.*state=(?!online)/m.test(info));
        if (states.every(Boolean) && synced.length === replicas.length && online) return;
        if (Date.now() > deadline) throw await failure(`replicas not in sync after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    client() {
      const client = new Cluster(
        live().map((node) => ({ host: '127.0.0.1', port: node.port })),
        {
          redisOptions: { maxRetriesPerRequest: null, ...(tlsOptions ? { tls: tlsOptions } : {}) },
        },
      );
      client.on('error', () => {});
      return client;
    },
    stop,
  };
  try {
    await cluster.waitHealthy();
    // A replica that has not finished its first sync never takes over: with no data of its
    // master it counts as disconnected forever (`cluster-replica-validity-factor`). So the
    // cluster is ready once every replica holds its master's data.
    await cluster.waitInSync();
  } catch (error) {
    await stop();
    throw error;
  }
  return cluster;
}
