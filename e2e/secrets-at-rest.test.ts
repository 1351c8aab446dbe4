/**
 * Secrets at rest, through real api, worker and rekey processes: a target's header values are
 * stored sealed and sensitive ones shown as "***"; a row from before sealing still works; a
 * SECRET_KEY rotation (SECRET_KEY_PREVIOUS, `npm run rekey` while the fleet runs and jobs
 * change) ends with every secret under the new key, and the previous key can go.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { decryptSecret } from '@tickwork/core';
import {
  ADMIN_TOKEN,
  ROOT,
  call,
  createTestDatabase,
  deletePrefix,
  startApi,
  startSink,
  startWorker,
  testBaseUrls,
  testPrefix,
  type FleetEnv,
  type Proc,
  type Received,
  type Sink,
  type TestDatabase,
} from '@tickwork/testkit';

const KEY_A = 'secrets-e2e-key-A-0123456789-0123456789';
const KEY_B = 'secrets-e2e-key-B-9876543210-9876543210';
const SECRETS = ['Bearer tok-SECRET-1', 'key-SECRET-2', 'seed-SECRET-3'];

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let worker: Proc;
let sink: Sink;
let token: string;
let signingSecret: string;
const output: string[] = [];

async function startFleet(keys: Record<string, string>) {
  // info: the request lines and whatever else the processes log are searched for the secrets.
  const fleetEnv = { ...env, ...keys, LOG_LEVEL: 'info' };
  [api, worker] = await Promise.all([startApi(fleetEnv), startWorker(fleetEnv)]);
}

async function stopFleet() {
  await Promise.all([api.stop(), worker.stop()]);
  output.push(...api.output, ...worker.output);
}

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_secrets');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix() };
  sink = await startSink();
  await startFleet({ SECRET_KEY: KEY_A });
  const service = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'secrets' } });
  token = service.body.apiKey;
  signingSecret = service.body.signingSecret;
}, 60_000);
afterAll(async () => {
  await Promise.allSettled([api?.stop(), worker?.stop()]);
  await sink?.close();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

const target = (path: string, headers: Record<string, string>, secretHeaders?: string[]) => ({
  url: `${sink.url}${path}`,
  headers,
  ...(secretHeaders ? { secretHeaders } : {}),
});

async function createJob(name: string, path: string, headers: Record<string, string>, secretHeaders?: string[]) {
  const created = await call(api, 'POST', '/v1/jobs', {
    token,
    body: { name, schedule: { every: '1h' }, target: target(path, headers, secretHeaders) },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body;
}

/** Runs the job now; the callback the sink got for it, its signature checked against the service's secret. */
async function delivered(jobId: string, path: string): Promise<Received> {
  const before = sink.received.filter((r) => r.path === path).length;
  const run = await call(api, 'POST', `/v1/jobs/${jobId}/trigger`, { token });
  expect(run.status).toBe(202);
  await sink.waitFor((all) => all.filter((r) => r.path === path).length > before, 20_000, `a callback at ${path}`);
  const received = sink.received.filter((r) => r.path === path).at(-1)!;
  new Webhook(signingSecret).verify(received.body, received.headers as Record<string, string>);
  return received;
}

async function storedRow(id: string) {
  const { rows } = await sql<{ row: string; target_headers: string | null; headers: string }>`
    SELECT jobs::text AS row, target_headers, (target->'headers')::text AS headers FROM jobs WHERE id = ${id}
  `.execute(db.db);
  return rows[0]!;
}

let jobId: string;

describe('target header values at rest', () => {
  it('are stored sealed, shown as *** when sensitive, and sent to the callback as they are', async () => {
    const job = await createJob(
      'sealed',
      '/sealed',
      { authorization: SECRETS[0]!, 'X-API-Key': SECRETS[1]!, 'x-seed': SECRETS[2]!, 'x-tenant': 'acme' },
      ['X-Seed'],
    );
    jobId = job.id;
    const shown = { authorization: '***', 'X-API-Key': '***', 'x-seed': '***', 'x-tenant': 'acme' };
    expect(job.target.headers).toEqual(shown);
    expect(job.target.secretHeaders).toEqual(['X-Seed']);
    expect((await call(api, 'GET', `/v1/jobs/${jobId}`, { token })).body.target.headers).toEqual(shown);
    const list = await call(api, 'GET', '/v1/jobs', { token });
    expect(list.body.items.find((j: { id: string }) => j.id === jobId).target.headers).toEqual(shown);

    const row = await storedRow(jobId);
    for (const secret of [...SECRETS, 'acme']) expect(row.row).not.toContain(secret);
    expect(row.headers).toBe('{}');
    expect(JSON.parse(decryptSecret(row.target_headers!, KEY_A))).toMatchObject({ authorization: SECRETS[0] });

    const received = await delivered(jobId, '/sealed');
    expect(received.headers).toMatchObject({
      authorization: SECRETS[0],
      'x-api-key': SECRETS[1],
      'x-seed': SECRETS[2],
      'x-tenant': 'acme',
    });
  });

  it('keep their value when a PATCH sends *** back; a new value replaces it', async () => {
    const patched = await call(api, 'PATCH', `/v1/jobs/${jobId}`, {
      token,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: { target: { headers: { authorization: '***', 'X-API-Key': 'key-SECRET-2b', 'x-tenant': 'globex' } } },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.target.headers).toEqual({
      authorization: '***',
      'X-API-Key': '***',
      'x-seed': '***',
      'x-tenant': 'globex',
    });
    const received = await delivered(jobId, '/sealed');
    expect(received.headers).toMatchObject({ authorization: SECRETS[0], 'x-api-key': 'key-SECRET-2b' });
    // The job read back, sent whole as a create of another name, carries no "***" to a callback: refused.
    const copy = await call(api, 'POST', '/v1/jobs', {
      token,
      body: { name: 'copy', schedule: { every: '1h' }, target: { ...patched.body.target } },
    });
    expect(copy.status).toBe(400);
    expect(copy.body.errors).toContainEqual(expect.objectContaining({ field: 'target.headers.authorization' }));
  });

  it('refuses a *** with nothing stored and a bad secretHeaders name, naming the field, and creates nothing', async () => {
    const before = (await call(api, 'GET', '/v1/jobs', { token })).body.items.length;
    const placeholder = await call(api, 'POST', '/v1/jobs', {
      token,
      body: { name: 'placeholder', schedule: { every: '1h' }, target: target('/p', { cookie: '***' }) },
    });
    expect(placeholder.status).toBe(400);
    expect(placeholder.headers['content-type']).toContain('application/problem+json');
    expect(placeholder.body.errors).toEqual([expect.objectContaining({ field: 'target.headers.cookie' })]);
    const badName = await call(api, 'POST', '/v1/jobs', {
      token,
      body: { name: 'bad', schedule: { every: '1h' }, target: target('/p', {}, ['not a header']) },
    });
    expect(badName.status).toBe(400);
    expect(badName.body.errors).toEqual([expect.objectContaining({ field: 'target.secretHeaders' })]);
    const notAList = await call(api, 'POST', '/v1/jobs', {
      token,
      body: { name: 'bad', schedule: { every: '1h' }, target: { url: `${sink.url}/p`, secretHeaders: 'x-a' } },
    });
    expect(notAList.status).toBe(400);
    expect(JSON.stringify(notAList.body.errors)).toContain('target.secretHeaders');
    expect((await call(api, 'GET', '/v1/jobs', { token })).body.items.length).toBe(before);
  });

  it('are another service’s business: its job is 404 to this one', async () => {
    const other = await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'secrets-2' } });
    const foreign = await call(api, 'GET', `/v1/jobs/${jobId}`, { token: other.body.apiKey });
    expect(foreign.status).toBe(404);
    const patch = await call(api, 'PATCH', `/v1/jobs/${jobId}`, {
      token: other.body.apiKey,
      headers: { 'content-type': 'application/merge-patch+json' },
      body: { target: { headers: { authorization: '***' } } },
    });
    expect(patch.status).toBe(404);
  });

  it('in a row written before sealing (plain text in target.headers) still work, redacted', async () => {
    const legacy = await createJob('legacy', '/legacy', {});
    await sql`
      UPDATE jobs SET target = jsonb_set(target, '{headers}', '{"authorization": "Bearer legacy-SECRET-4"}')
      WHERE id = ${legacy.id}
    `.execute(db.db);
    const read = await call(api, 'GET', `/v1/jobs/${legacy.id}`, { token });
    expect(read.body.target.headers).toEqual({ authorization: '***' });
    expect((await delivered(legacy.id, '/legacy')).headers.authorization).toBe('Bearer legacy-SECRET-4');
  });
});

/** `npm run rekey`'s process (the sources, as the fleet runs them here). */
async function runRekey(keys: Record<string, string>) {
  const child = spawn('sh', ['infra/node/launch.sh', 'rekey'], {
    cwd: ROOT,
    // NODE: this Node (24), as the test kit starts the api and the worker; the PATH may hold an older one.
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      NODE: process.execPath,
      NODE_ENV: 'test',
      TICKWORK_SOURCES: '1',
      ...keys,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d));
  child.stderr.on('data', (d: Buffer) => (text += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, text };
}

describe('a SECRET_KEY rotation', () => {
  it('keeps every job delivering while rekey runs beside the fleet and jobs change, then the previous key goes', async () => {
    // Many jobs, so the rekey takes many batches while PATCHes land between them.
    const many: string[] = [];
    for (let i = 0; i < 60; i++) {
      many.push((await createJob(`many-${i}`, `/many-${i}`, { authorization: `Bearer many-${i}` })).id);
    }
    await stopFleet();
    // Step 1 of docs/security.md's procedure: every process opens both; new writes use the new key.
    await startFleet({ SECRET_KEY: KEY_B, SECRET_KEY_PREVIOUS: KEY_A });
    expect((await delivered(jobId, '/sealed')).headers.authorization).toBe(SECRETS[0]);
    const underB = await createJob('under-b', '/under-b', { authorization: 'Bearer b-SECRET-5' });

    let patching = true;
    const patches = (async () => {
      let n = 0;
      while (patching) {
        const id = many[n % many.length]!;
        const answer = await call(api, 'PATCH', `/v1/jobs/${id}`, {
          token,
          headers: { 'content-type': 'application/merge-patch+json' },
          body: { target: { headers: { authorization: `Bearer many-${n % many.length}-v${n}` } } },
        });
        expect(answer.status).toBe(200);
        n++;
      }
      return n;
    })();
    const rekeyed = await runRekey({ SECRET_KEY: KEY_B, SECRET_KEY_PREVIOUS: KEY_A, REKEY_BATCH_SIZE: '5' });
    patching = false;
    const patchCount = await patches;
    expect(rekeyed.code, rekeyed.text).toBe(0);
    expect(rekeyed.text).toMatch(/rekey: [1-9]\d* jobs and 2 services sealed again under SECRET_KEY/);
    expect(patchCount).toBeGreaterThan(0);

    // Everything opens under the new key alone; nothing is left in plain text.
    const rows = await db.db.selectFrom('jobs').select(['id', 'target_headers']).execute();
    for (const row of rows)
      if (row.target_headers) expect(() => decryptSecret(row.target_headers!, KEY_B)).not.toThrow();
    const { rows: plain } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM jobs WHERE target->'headers' <> '{}'::jsonb
    `.execute(db.db);
    expect(plain[0]!.n).toBe(0);
    // The copies of the rows in the version history too.
    const { rows: entries } = await sql<{ sealed: string | null; headers: unknown }>`
      SELECT definition->>'target_headers' AS sealed, definition->'target'->'headers' AS headers FROM job_versions
    `.execute(db.db);
    expect(entries.length).toBeGreaterThan(0);
    for (const entry of entries) {
      expect(entry.headers).toEqual({});
      if (entry.sealed) expect(() => decryptSecret(entry.sealed!, KEY_B)).not.toThrow();
    }
    const services = await db.db.selectFrom('services').select(['signing_secret']).execute();
    for (const s of services) expect(() => decryptSecret(s.signing_secret, KEY_B)).not.toThrow();
    // A second run finds nothing to do.
    const again = await runRekey({ SECRET_KEY: KEY_B, SECRET_KEY_PREVIOUS: KEY_A });
    expect(again.text).toContain('rekey: 0 jobs and 0 services sealed again');

    // Step 3: the previous key is dropped; every job, old, new, legacy and patched, still delivers.
    await stopFleet();
    await startFleet({ SECRET_KEY: KEY_B });
    expect((await delivered(jobId, '/sealed')).headers.authorization).toBe(SECRETS[0]);
    expect((await delivered(underB.id, '/under-b')).headers.authorization).toBe('Bearer b-SECRET-5');
    const last = await call(api, 'GET', `/v1/jobs/${many[0]}`, { token });
    expect(last.body.target.headers).toEqual({ authorization: '***' });
    const history = await call(api, 'GET', `/v1/jobs/${many[0]}/versions`, { token });
    expect(history.status, JSON.stringify(history.body)).toBe(200);
    for (const entry of history.body.items) expect(entry.definition.target.headers).toEqual({ authorization: '***' });
    const lastSent = (await delivered(many[0]!, '/many-0')).headers.authorization as string;
    expect(lastSent).toMatch(/^Bearer many-0(-v\d+)?$/);
  }, 180_000);

  it('refuses a wrong key: a rekey whose keys open nothing fails and changes nothing', async () => {
    const before = await db.db.selectFrom('jobs').select(['id', 'target_headers']).orderBy('id').execute();
    const wrong = await runRekey({ SECRET_KEY: 'a-wrong-key-0123456789-0123456789-0123' });
    expect(wrong.code).toBe(1);
    expect(wrong.text).toContain('open under neither SECRET_KEY nor SECRET_KEY_PREVIOUS');
    expect(await db.db.selectFrom('jobs').select(['id', 'target_headers']).orderBy('id').execute()).toEqual(before);
  });

  it('never wrote a secret to a log line', async () => {
    await stopFleet();
    const logs = output.join('');
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of [...SECRETS, 'legacy-SECRET-4', 'b-SECRET-5']) expect(logs).not.toContain(secret);
    await startFleet({ SECRET_KEY: KEY_B });
  });
});
