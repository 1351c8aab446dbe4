/**
 * The whole path on a Redis Cluster of this file's own (3 masters, 3 replicas), with the fire
 * queue in 3 shards under an untagged prefix, through real api and worker processes: every Redis
 * use of the api (the queues, the key cache's epoch, the rate limit, Bull Board, the gauges) and
 * of the worker (its queues, the maintenance queue, the reconciler) on the ioredis Cluster.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fireQueueNamesOf, shardIndexOf } from '@tickwork/queue';
import {
  ADMIN_TOKEN,
  call,
  createTestDatabase,
  eventually,
  sampleValue,
  scrape,
  startApi,
  startOwnRedisCluster,
  startSink,
  startWorker,
  type FleetEnv,
  type OwnRedisCluster,
  type Proc,
  type Sink,
  type TestDatabase,
} from '@tickwork/testkit';

const SHARDS = 3;
let cluster: OwnRedisCluster;
let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc;
let sink: Sink;
let token: string;

beforeAll(async () => {
  [cluster, db, sink] = await Promise.all([startOwnRedisCluster(), createTestDatabase('tw_e2e_cluster'), startSink()]);
  env = {
    DATABASE_URL: db.url,
    // Credentials and TLS only: the nodes come from REDIS_CLUSTER_NODES.
    REDIS_URL: `redis://${cluster.nodes[0]!.address}`,
    REDIS_CLUSTER_NODES: cluster.nodesEnv,
    FIRE_QUEUE_SHARDS: String(SHARDS),
    BULLMQ_PREFIX: `twe2e-${randomBytes(4).toString('hex')}`,
    // Room for the first case's creates (as many as it takes to cover every shard), trigger, pause,
    // resume and deletes under one key within a minute; the last case spends the rest on purpose.
    RATE_LIMIT_PER_MINUTE: '100',
    LOG_LEVEL: 'error',
    RECONCILE_INTERVAL_MS: '2000',
  };
  [api, worker] = await Promise.all([startApi(env), startWorker(env)]);
  const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'cluster' } });
  expect(service.status).toBe(201);
  token = service.body.apiKey;
}, 90_000);

afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  await cluster?.stop();
}, 60_000);

describe('Tickwork on a Redis Cluster', () => {
  it('is ready, fires jobs of every shard, runs now, pauses, resumes and deletes', async () => {
    for (const proc of [api, worker]) {
      const ready = await call(proc, 'GET', '/health/ready');
      expect(ready.status).toBe(200);
    }
    const jobs: string[] = [];
    for (let i = 0; jobs.length < 6 || new Set(jobs.map((id) => shardIndexOf(id, SHARDS))).size < SHARDS; i++) {
      const created = await call(api, 'POST', '/v1/jobs', {
        token,
        body: { name: `tick-${i}`, schedule: { every: '1s' }, target: { url: `${sink.url}/tick/${i}` } },
      });
      expect(created.status).toBe(201);
      jobs.push(created.body.id);
    }
    await sink.waitFor(
      (received) => jobs.every((id) => received.some((c) => c.headers['tickwork-job-id'] === id)),
      20_000,
      'every job firing',
    );

    const [first, second] = jobs as [string, string];
    const run = await call(api, 'POST', `/v1/jobs/${first}/trigger`, { token });
    expect(run.status).toBe(202);
    await sink.waitFor(
      (received) => received.some((c) => c.headers['webhook-id'] === run.body.id),
      15_000,
      'the manual run',
    );

    expect((await call(api, 'POST', `/v1/jobs/${second}/pause`, { token })).status).toBe(200);
    const paused = Date.now() + 1_000;
    await sink.waitFor(
      (received) => received.some((c) => c.headers['tickwork-job-id'] === first && c.at > paused + 2_000),
      15_000,
      'two seconds of the other jobs',
    );
    expect(sink.received.filter((c) => c.headers['tickwork-job-id'] === second && c.at > paused)).toEqual([]);
    expect((await call(api, 'POST', `/v1/jobs/${second}/resume`, { token })).status).toBe(200);
    const resumed = Date.now();
    await sink.waitFor(
      (received) => received.some((c) => c.headers['tickwork-job-id'] === second && c.at > resumed),
      15_000,
      'the resumed job',
    );

    for (const id of jobs) expect((await call(api, 'DELETE', `/v1/jobs/${id}`, { token })).status).toBe(204);
    const deleted = Date.now() + 1_000;
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(sink.received.filter((c) => c.at > deleted && jobs.includes(String(c.headers['tickwork-job-id'])))).toEqual(
      [],
    );
  }, 90_000);

  it('shows every shard in Bull Board and sums them in the queue gauges', async () => {
    const created = await call(api, 'POST', '/v1/jobs', {
      token,
      body: { name: 'later', schedule: { every: '1h' }, target: { url: `${sink.url}/later` } },
    });
    expect(created.status).toBe(201);
    const board = await call(api, 'GET', '/admin/queues/api/queues', { token: ADMIN_TOKEN });
    expect(board.status, `${JSON.stringify(board.body)}\n${api.output.join('').slice(-3_000)}`).toBe(200);
    const names = fireQueueNamesOf({ prefix: env.BULLMQ_PREFIX, shards: SHARDS, cluster: true });
    expect(board.body.queues.map((q: { name: string }) => q.name).sort()).toEqual([...names].sort());
    for (const proc of [api, worker]) {
      const schedulers = await eventually(
        async () => {
          const value = sampleValue(await scrape(proc.url), 'tickwork_schedulers');
          return value === 1 ? value : undefined;
        },
        15_000,
        `${proc === api ? 'api' : 'worker'} gauge of schedulers`,
      );
      expect(schedulers).toBe(1);
    }
    expect((await call(api, 'DELETE', `/v1/jobs/${created.body.id}`, { token })).status).toBe(204);
  });

  it('counts requests per key across the cluster and sees a revoked key at once', async () => {
    const limited = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'limited' } });
    const key = limited.body.apiKey as string;
    const first = await call(api, 'GET', '/v1/jobs', { token: key });
    expect(first.status).toBe(200);
    expect(first.headers['ratelimit-limit']).toBe('100');
    let status = 200;
    for (let i = 0; i < 105 && status === 200; i++)
      status = (await call(api, 'GET', '/v1/jobs', { token: key })).status;
    expect(status).toBe(429);

    // The key cache's epoch lives in Redis: a revoke is seen by the next request.
    const keyId = limited.body.apiKeyId as string;
    const revoked = await call(api, 'DELETE', `/v1/admin/services/${limited.body.id}/keys/${keyId}`, {
      token: ADMIN_TOKEN,
    });
    expect(revoked.status).toBe(204);
    expect((await call(api, 'GET', '/v1/jobs', { token: key })).status).toBe(401);
  });
});
