/**
 * `rediss:` on a Redis Cluster of this file's own that speaks TLS only (clients, bus and
 * replication) and announces its nodes as 127.0.0.1, while its certificate names a host
 * (`redis.tickwork.test`), as some managed clusters do. With `?servername=` in the URL every node's
 * certificate is checked against that name and Tickwork's connections work, BullMQ included;
 * without it the check against the address fails and nothing is sent in clear.
 */
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { startOwnRedisCluster, type OwnRedisCluster } from '@tickwork/testkit';
import { closeRedis, openRedis, type RedisClient } from '../src/connection.ts';

let cluster: OwnRedisCluster;
let defaultCAs: string[];

beforeAll(async () => {
  cluster = await startOwnRedisCluster({ masters: 3, replicas: 0, tls: true });
  // What NODE_EXTRA_CA_CERTS does for a process at start: the cluster's CA trusted beside the system's.
  defaultCAs = getCACertificates('default');
  setDefaultCACertificates([...defaultCAs, cluster.tls!.ca]);
}, 60_000);

afterAll(async () => {
  if (defaultCAs) setDefaultCACertificates(defaultCAs);
  await cluster?.stop();
});

const nodes = () => cluster.nodesEnv.split(',');
const seed = () => nodes()[0]!;

async function withClient<T>(url: string, use: (client: RedisClient) => Promise<T>): Promise<T> {
  const client = openRedis({ url, clusterNodes: nodes() }, 'producer', 'tls-test');
  try {
    return await use(client);
  } finally {
    await closeRedis(client);
  }
}

describe('a TLS cluster whose certificate names a host, not the nodes’ addresses', () => {
  it('works with ?servername=: keys on every master, and a BullMQ queue', async () => {
    const url = `rediss://${seed()}?servername=${cluster.tls!.servername}`;
    await withClient(url, async (client) => {
      const keys = ['{a}x', '{b}x', '{c}x', '{d}x', '{e}x', '{f}x'];
      for (const key of keys) await client.set(key, key);
      expect(await Promise.all(keys.map((key) => client.get(key)))).toEqual(keys);
      const masters = new Set(await Promise.all(keys.map(async (key) => (await cluster.masterOf(key)).port)));
      expect(masters.size).toBe(3);
      const queue = new Queue('{tls}', { connection: client, prefix: 'tw-tls' });
      await queue.add('one', { n: 1 });
      expect(await queue.getWaitingCount()).toBe(1);
      await queue.close();
    });
  });

  it('refuses the nodes without it: the certificate does not name 127.0.0.1', async () => {
    // The Cluster's connections meet the refusal too, but report only "Connection is closed":
    // one node's connection with the same options names the cause.
    const clustered = openRedis({ url: `rediss://${seed()}`, clusterNodes: nodes() }, 'producer', 'tls-test');
    const set = clustered.set('{a}y', '1').then(
      () => 'written',
      (error: Error) => error.message,
    );
    const single = openRedis(`rediss://${seed()}`, 'producer', 'tls-test');
    try {
      const refused = await new Promise<NodeJS.ErrnoException>((resolve) => {
        single.on('error', (error: NodeJS.ErrnoException) => {
          if (error.code === 'ERR_TLS_CERT_ALTNAME_INVALID') resolve(error);
        });
      });
      expect(refused.message).toMatch(/127\.0\.0\.1 is not in the cert's list/);
    } finally {
      single.disconnect();
      clustered.disconnect();
    }
    expect(await set).not.toBe('written');
    // Nothing reached the cluster.
    await withClient(`rediss://${seed()}?servername=${cluster.tls!.servername}`, async (reader) => {
      expect(await reader.get('{a}y')).toBeNull();
    });
  });
});
