/**
 * SIGTERM to a real api while a request is in flight: it stops accepting connections, finishes
 * the request (201, the job saved), closes its pools and exits 0. The request is held in flight
 * by a table lock the test owns, so nothing here depends on timing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import pg from 'pg';
import {
  createTestDatabase,
  testBaseUrls,
  testPrefix,
  type TestDatabase,
  ADMIN_TOKEN,
  call,
  startApi,
  type FleetEnv,
  type Proc,
  eventually,
  deletePrefix,
} from '@tickwork/testkit';

let db: TestDatabase;
let env: FleetEnv;
let api: Proc;
let locker: pg.Client;
// Not the locker: inside its transaction pg_stat_activity would answer from a snapshot.
let observer: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('tw_e2e_api_stop');
  env = { DATABASE_URL: db.url, REDIS_URL: testBaseUrls().redisUrl, BULLMQ_PREFIX: testPrefix(), LOG_LEVEL: 'info' };
  api = await startApi(env);
  locker = new pg.Client({ connectionString: db.url });
  observer = new pg.Client({ connectionString: db.url });
  await Promise.all([locker.connect(), observer.connect()]);
});
afterAll(async () => {
  await Promise.all([locker?.end().catch(() => {}), observer?.end().catch(() => {})]);
  await api?.stop();
  await db?.drop();
  if (env) await deletePrefix(env.REDIS_URL, env.BULLMQ_PREFIX);
});

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('api graceful shutdown', () => {
  it('finishes the in-flight request, then exits 0', async () => {
    const { apiKey } = (await call(api, 'POST', '/v1/admin/services', { token: ADMIN_TOKEN, body: { name: 'drain' } }))
      .body;
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE');

    const inFlight = call(api, 'POST', '/v1/jobs', {
      token: apiKey,
      body: { name: 'held', schedule: { every: '1h' }, target: { url: 'https://example.com/hook' } },
    });
    await eventually(
      async () => {
        const waiting = await observer.query(
          `select 1 from pg_stat_activity where application_name = 'tickwork-api' and wait_event_type = 'Lock'`,
        );
        return waiting.rowCount ? true : undefined;
      },
      10_000,
      'the request to wait on the lock',
    );

    const exited = api.stop('SIGTERM');
    await eventually(
      async () => ((await refusesConnections(api.port)) ? true : undefined),
      5_000,
      'the listener to close',
    );
    await locker.query('COMMIT');

    const response = await inFlight;
    expect(response.status).toBe(201);
    expect(await exited).toBe(0);
    const saved = await locker.query('select name from jobs where id = $1', [response.body.id]);
    expect(saved.rows).toEqual([{ name: 'held' }]);
    expect(api.output.join('')).toContain('shutting down: finishing in-flight requests');
  });
});
