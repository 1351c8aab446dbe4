/**
 * DATABASE_READ_URL against a real streaming replica that replays 2 s late
 * (`recovery_min_apply_delay = '2s'`, the test kit's own primary and replica), with two api
 * processes sharing the primary, the replica and Redis:
 * - lists and gets are answered by the replica (a change made behind the api's back shows late);
 * - read-your-writes: after a create, patch, pause or delete through one api, a read through the
 *   other never shows the older state, while the replica is 2 s behind;
 * - one service's writes do not send another service's reads to the primary;
 * - replica crashed, hung or far behind: reads go to the primary within 1 s, no 5xx, and
 *   /health/ready stays 200 naming the replica degraded; it serves reads again once it is back;
 * - the lag is a metric.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, migrateToLatest } from '@tickwork/db';
import {
  ADMIN_TOKEN,
  call,
  deletePrefix,
  eventually,
  sampleValue,
  scrape,
  startApi,
  startPgReplica,
  testBaseUrls,
  testPrefix,
  type FleetEnv,
  type PgReplicaPair,
  type Proc,
} from '@tickwork/testkit';
import { METRIC_LABELS, REPLICA_METRICS, familyOf } from './lib/metric-names.ts';

const DELAY_MS = 2_000;
const MAX_LAG_MS = 5_000;

let pair: PgReplicaPair;
let env: FleetEnv;
let a: Proc;
let b: Proc;

beforeAll(async () => {
  pair = await startPgReplica({ applyDelayMs: DELAY_MS, database: 'tickwork_replica_e2e' });
  const handle = createDatabase({ url: pair.primary.url(), poolMax: 2 });
  try {
    await migrateToLatest(handle.db);
  } finally {
    await handle.close();
  }
  await pair.caughtUp();
  env = {
    DATABASE_URL: pair.primary.url(),
    DATABASE_READ_URL: pair.replica.url(),
    DATABASE_READ_MAX_LAG_MS: String(MAX_LAG_MS),
    REDIS_URL: testBaseUrls().redisUrl,
    BULLMQ_PREFIX: testPrefix(),
  };
  [a, b] = await Promise.all([startApi(env), startApi(env)]);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([a?.stop(), b?.stop()]);
  await pair?.stop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

async function newService(name: string) {
  const response = await call(a, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name } });
  expect(response.status).toBe(201);
  return response.body as { id: string; apiKey: string };
}

const job = (name: string) => ({ name, schedule: { every: '1h' }, target: { url: 'https://example.com/hook' } });

async function readsBy(api: Proc): Promise<{ replica: number; primary: number }> {
  const metrics = await scrape(api.url);
  return {
    replica: sampleValue(metrics, 'tickwork_db_reads_total', { target: 'replica' }) ?? 0,
    primary: sampleValue(metrics, 'tickwork_db_reads_total', { target: 'primary' }) ?? 0,
  };
}

/** Waits until a read of `path` through `api` is answered by the replica (its poll has seen the replay). */
async function servedByReplica(api: Proc, path: string, token: string): Promise<void> {
  await eventually(
    async () => {
      const before = await readsBy(api);
      const response = await call(api, 'GET', path, { token });
      expect(response.status).toBe(200);
      return (await readsBy(api)).replica > before.replica ? true : undefined;
    },
    10_000,
    `${path} to be read from the replica`,
  );
}

async function replicaCheck(api: Proc) {
  const ready = await call(api, 'GET', '/health/ready');
  return { status: ready.status, replica: ready.body.checks.replica, body: ready.body };
}

async function replicaOk(api: Proc, timeoutMs = 20_000): Promise<void> {
  await eventually(
    async () => ((await replicaCheck(api)).replica?.status === 'ok' ? true : undefined),
    timeoutMs,
    'the replica to serve reads again',
  );
}

describe('the api on a read replica 2 s behind', () => {
  it('answers lists and gets from the replica', async () => {
    const service = await newService('replica-reads');
    const created = await call(a, 'POST', '/v1/jobs', { token: service.apiKey, body: job('before') });
    expect(created.status).toBe(201);
    // Once the replica has replayed past the create (and b has seen it do so), b reads from it.
    await pair.caughtUp();
    await servedByReplica(b, `/v1/jobs/${created.body.id}`, service.apiKey);

    // A change behind the api's back (no write mark) is served late: the reads are the replica's.
    await pair.primary.query('UPDATE jobs SET name = $1 WHERE id = $2', ['behind-the-back', created.body.id]);
    const stale = await call(b, 'GET', `/v1/jobs/${created.body.id}`, { token: service.apiKey });
    expect(stale.body.name).toBe('before');
    await eventually(
      async () => {
        const fresh = await call(b, 'GET', `/v1/jobs/${created.body.id}`, { token: service.apiKey });
        return fresh.body.name === 'behind-the-back' ? true : undefined;
      },
      10_000,
      'the replica to replay the change',
    );
  });

  it('reads its own writes through the other instance: create, patch, pause, delete', async () => {
    const service = await newService('read-your-writes');
    const token = service.apiKey;
    for (let round = 0; round < 3; round++) {
      const [writer, reader] = round % 2 === 0 ? [a, b] : [b, a];
      const created = await call(writer, 'POST', '/v1/jobs', { token, body: job(`job-${round}`) });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      const got = await call(reader, 'GET', `/v1/jobs/${id}`, { token });
      expect(got.status).toBe(200);
      expect(got.body.name).toBe(`job-${round}`);
      const listed = await call(reader, 'GET', '/v1/jobs?limit=100', { token });
      expect(listed.body.items.map((j: { id: string }) => j.id)).toContain(id);

      const patched = await call(writer, 'PATCH', `/v1/jobs/${id}`, { token, body: { name: `patched-${round}` } });
      expect(patched.status).toBe(200);
      expect((await call(reader, 'GET', `/v1/jobs/${id}`, { token })).body.name).toBe(`patched-${round}`);

      expect((await call(reader, 'POST', `/v1/jobs/${id}/pause`, { token })).status).toBe(200);
      expect((await call(writer, 'GET', `/v1/jobs/${id}`, { token })).body.state).toBe('paused');
      const pausedList = await call(writer, 'GET', '/v1/jobs?limit=100', { token });
      expect(pausedList.body.items.find((j: { id: string }) => j.id === id)?.state).toBe('paused');

      expect((await call(writer, 'DELETE', `/v1/jobs/${id}`, { token })).status).toBe(204);
      expect((await call(reader, 'GET', `/v1/jobs/${id}`, { token })).status).toBe(404);
      const afterDelete = await call(reader, 'GET', '/v1/jobs?limit=100', { token });
      expect(afterDelete.body.items.map((j: { id: string }) => j.id)).not.toContain(id);
    }
    // And the admin routes: a service created through one instance is there through the other.
    const made = await call(a, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'admin-ryw' } });
    expect((await call(b, 'GET', `/v1/admin/services/${made.body.id}`, { token: ADMIN_TOKEN })).status).toBe(200);
  });

  it("keeps another service's reads on the replica while one service writes", async () => {
    const writer = await newService('busy');
    const other = await newService('quiet');
    const mine = await call(a, 'POST', '/v1/jobs', { token: other.apiKey, body: job('quiet-job') });
    expect(mine.status).toBe(201);
    await pair.caughtUp();
    await servedByReplica(b, '/v1/jobs', other.apiKey);
    expect((await call(a, 'POST', '/v1/jobs', { token: writer.apiKey, body: job('busy-job') })).status).toBe(201);
    const before = await readsBy(b);
    expect((await call(b, 'GET', '/v1/jobs', { token: other.apiKey })).status).toBe(200);
    const after = await readsBy(b);
    expect(after.replica).toBe(before.replica + 1);
    expect(after.primary).toBe(before.primary);
  });

  it('exports the lag, and /health/ready shows the replica', async () => {
    await replicaOk(a);
    const { status, replica } = await replicaCheck(a);
    expect(status).toBe(200);
    expect(replica.status).toBe('ok');
    expect(typeof replica.lagSeconds).toBe('number');
    const metrics = await scrape(a.url);
    expect(sampleValue(metrics, 'tickwork_db_replica_up')).toBe(1);
    expect(sampleValue(metrics, 'tickwork_db_replica_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(sampleValue(metrics, 'tickwork_db_replica_lag_bytes')).toBeGreaterThanOrEqual(0);
    // The series infra/ (dashboard, alerts) reads, with the labels it selects on.
    for (const name of REPLICA_METRICS) {
      const family = metrics.get(familyOf(name)) ?? metrics.get(name.replace(/_total$/, ''));
      expect(family, name).toBeDefined();
      const labels = new Set(family!.samples.flatMap((sample) => Object.keys(sample.labels)));
      for (const label of METRIC_LABELS[familyOf(name)] ?? []) expect([...labels], name).toContain(label);
    }
  });
});

/**
 * Reads through both instances, back to back, while `during` breaks the replica: every one must
 * answer 200 with the current state, and each instance must report the replica degraded within 1 s.
 */
async function readsSurvive(label: string, token: string, id: string, breakIt: () => Promise<void> | void) {
  const statuses: number[] = [];
  let reading = true;
  const loop = (async () => {
    while (reading) {
      for (const api of [a, b]) {
        const response = await call(api, 'GET', `/v1/jobs/${id}`, { token });
        statuses.push(response.status);
      }
    }
  })();
  // Whatever happens below, the loop ends and its failure is reported, not left unhandled.
  const stopReading = async () => {
    reading = false;
    await loop;
  };
  try {
    const brokeAt = Date.now();
    await breakIt();
    // Polled every 25 ms (not `eventually`'s 100 ms), so the figure is the api's, not the poll's.
    const degradedAfter = await Promise.all(
      [a, b].map(async (api) => {
        const deadline = brokeAt + 5_000;
        while ((await replicaCheck(api)).replica?.status !== 'degraded') {
          if (Date.now() > deadline) throw new Error(`${label}: the replica never showed degraded`);
          await new Promise((r) => setTimeout(r, 25));
        }
        return Date.now() - brokeAt;
      }),
    );
    console.log(`${label}: degraded after ${degradedAfter.join(' and ')} ms; ${statuses.length} reads so far`);
    await stopReading();
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    for (const ms of degradedAfter) expect(ms, `${label}: degraded after ${ms} ms`).toBeLessThan(1_000);
    // Degraded, yet ready: the next reads go to the primary, and the counters say so.
    for (const api of [a, b]) {
      const { status, body } = await replicaCheck(api);
      expect(status, JSON.stringify(body)).toBe(200);
      expect(body.status).toBe('ok');
      const before = await readsBy(api);
      // A list: a get of one job may be answered from the api's own cache, reading nothing.
      const read = await call(api, 'GET', '/v1/jobs?limit=1', { token });
      expect(read.status).toBe(200);
      const after = await readsBy(api);
      expect(after.replica, label).toBe(before.replica);
      // One query or two (a page's row versions, then rows not yet serialized): all on the primary.
      expect(after.primary, label).toBeGreaterThan(before.primary);
    }
  } finally {
    await stopReading();
  }
}

describe('when the replica fails', () => {
  let token: string;
  let id: string;

  beforeAll(async () => {
    const service = await newService('replica-failures');
    token = service.apiKey;
    const created = await call(a, 'POST', '/v1/jobs', { token, body: job('survivor') });
    id = created.body.id;
    await pair.caughtUp();
    await Promise.all([replicaOk(a), replicaOk(b)]);
  });

  it('crashed: reads go to the primary within 1 s, no 5xx; back when it is', async () => {
    try {
      await readsSurvive('crash', token, id, () => pair.replica.stop('immediate'));
    } finally {
      await pair.replica.start();
    }
    await Promise.all([replicaOk(a), replicaOk(b)]);
    await servedByReplica(a, `/v1/jobs/${id}`, token);
  });

  it('hung (SIGSTOP): reads go to the primary within 1 s, no 5xx', async () => {
    try {
      await readsSurvive('hang', token, id, () => pair.replica.freeze());
    } finally {
      pair.replica.thaw();
    }
    await Promise.all([replicaOk(a), replicaOk(b)]);
  });

  it('far behind: reads go to the primary and see every write', async () => {
    await Promise.all([replicaOk(a), replicaOk(b)]);
    await pair.pauseReplay();
    try {
      // Writes the replica does not replay: its lag grows past DATABASE_READ_MAX_LAG_MS.
      const deadline = Date.now() + MAX_LAG_MS + 10_000;
      let degraded = false;
      while (!degraded && Date.now() < deadline) {
        const patched = await call(a, 'PATCH', `/v1/jobs/${id}`, { token, body: { name: `n-${Date.now()}` } });
        expect(patched.status).toBe(200);
        const read = await call(b, 'GET', `/v1/jobs/${id}`, { token });
        expect(read.status).toBe(200);
        expect(read.body.name).toBe(patched.body.name);
        const check = await replicaCheck(b);
        expect(check.status).toBe(200);
        degraded = check.replica.status === 'degraded';
        if (degraded) expect(check.replica.reason).toMatch(/behind/);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(degraded).toBe(true);
      const metrics = await scrape(b.url);
      expect(sampleValue(metrics, 'tickwork_db_replica_lag_seconds')).toBeGreaterThan(MAX_LAG_MS / 1000);
      expect(sampleValue(metrics, 'tickwork_db_replica_up')).toBe(0);
    } finally {
      await pair.resumeReplay();
    }
    await Promise.all([replicaOk(a), replicaOk(b)]);
  });
});
