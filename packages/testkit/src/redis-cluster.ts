/**
 * A Redis Cluster of a test's own: `masters` masters and as many replicas each, every node a
 * `redis-server --cluster-enabled yes` on free loopback ports (its client and cluster-bus ports),
 * joined by `redis-cli --cluster create … --cluster-replicas`, with `cluster-node-timeout 2000`
 * so a dead master's replica takes over within seconds. Nothing is saved to disk; each node's
 * cluster file lives in a temporary directory removed on stop.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
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
  nodes: ClusterNode[];
  /** The node serving a key's slot as master now. */
  masterOf(key: string): Promise<ClusterNode>;
  /** The masters now, by the slots they serve. */
  masters(): Promise<Array<{ node: ClusterNode; slots: Array<[number, number]> }>>;
  /** kill -9 of one node (the process dies; its replica, if it was a master, takes over). */
  kill(node: ClusterNode): void;
  /** Resolves once every live node says `cluster_state:ok` and each slot has a live master. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** An ioredis Cluster client on the nodes (the caller closes it). */
  client(): Cluster;
  /** Stops every node and removes their files. */
  stop(): Promise<void>;
}

async function answers(port: number): Promise<boolean> {
  const probe = new Redis({
    port,
    host: '127.0.0.1',
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

async function ask(port: number, ...args: string[]): Promise<string> {
  const client = new Redis({ port, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0 });
  client.on('error', () => {});
  try {
    return String(await client.call(args[0]!, ...args.slice(1)));
  } finally {
    client.disconnect();
  }
}

/** Starts the cluster and waits until it serves every slot. */
export async function startOwnRedisCluster(
  options: { masters?: number; replicas?: number } = {},
): Promise<OwnRedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const dir = mkdtempSync(join(tmpdir(), 'tickwork-redis-cluster-'));
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
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const port = await freePort();
      let busPort = await freePort();
      while (busPort === port) busPort = await freePort();
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
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
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      nodes.push({ port, address: `127.0.0.1:${port}`, child });
    }
    const deadline = Date.now() + 15_000;
    for (const node of nodes) {
      while (!(await answers(node.port))) {
        if (node.child.exitCode !== null)
          throw new Error(`redis-server on ${node.port} exited (${node.child.exitCode})`);
        if (Date.now() > deadline) throw new Error(`redis-server on ${node.port} did not answer`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await run('redis-cli', [
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
  const live = () => nodes.filter((node) => node.child.exitCode === null && node.child.signalCode === null);
  const byPort = (port: number) => nodes.find((node) => node.port === port)!;
  const cluster: OwnRedisCluster = {
    nodesEnv: nodes.map((node) => node.address).join(','),
    nodes,
    async masters() {
      const client = new Redis({ port: live()[0]!.port, host: '127.0.0.1' });
      try {
        const slots = (await client.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
        const found = new Map<number, Array<[number, number]>>();
        for (const [from, to, [, port]] of slots) found.set(port, [...(found.get(port) ?? []), [from, to]]);
        return [...found].map(([port, ranges]) => ({ node: byPort(port), slots: ranges }));
      } finally {
        client.disconnect();
      }
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
        if (Date.now() > deadline) throw new Error(`the Redis Cluster is not healthy after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    client() {
      const client = new Cluster(
        live().map((node) => ({ host: '127.0.0.1', port: node.port })),
        {
          redisOptions: { maxRetriesPerRequest: null },
        },
      );
      client.on('error', () => {});
      return client;
    },
    stop,
  };
  await cluster.waitHealthy();
  return cluster;
}
