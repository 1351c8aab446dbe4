/**
 * Every list the API offers has an index that serves it. One service holds 20,000 jobs and
 * 20,000 runs of which a few match each filter; after ANALYZE the planner must pick the filter's
 * own index, and never scan the table.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { uuidv7 } from '@tickwork/core';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';

let db: TestDatabase;
const service = uuidv7();
const job = uuidv7();
beforeAll(async () => {
  db = await createTestDatabase();
  // max_jobs above the default 10,000: the database counts every insert against it (migration 0003).
  await sql`INSERT INTO services (id, name, signing_secret, max_jobs) VALUES (${service}, 'big', 'x', 100000)`.execute(
    db.db,
  );
  await sql`
    INSERT INTO jobs (id, service_id, name, labels, schedule, target, misfire, retry, state, created_at, updated_at)
    SELECT gen_random_uuid(), ${service}, CASE WHEN i % 2000 = 0 THEN 'bill-' || i ELSE 'job-' || i END,
           CASE WHEN i % 2000 = 1 THEN '{"team":"a"}'::jsonb ELSE jsonb_build_object('n', i::text) END,
           '{}', '{}', '{}', '{}', CASE WHEN i % 2000 = 2 THEN 'paused' ELSE 'active' END, now(), now()
    FROM generate_series(1, 20000) AS i`.execute(db.db);
  await sql`
    INSERT INTO jobs (id, service_id, name, schedule, target, misfire, retry, state, created_at, updated_at)
    VALUES (${job}, ${service}, 'one', '{}', '{}', '{}', '{}', 'active', now(), now())`.execute(db.db);
  await sql`
    INSERT INTO runs (id, job_id, service_id, job_version, scheduled_for, trigger, status, created_at)
    SELECT gen_random_uuid(), ${job}, ${service}, 1, now() - i * interval '1 second', 'schedule',
           CASE WHEN i % 2000 = 0 THEN 'dead' WHEN i % 2000 = 1 THEN 'running' ELSE 'succeeded' END,
           CASE WHEN i % 100 = 0 THEN now() - interval '10 days' ELSE now() END
    FROM generate_series(1, 20000) AS i`.execute(db.db);
  await sql`ANALYZE`.execute(db.db);
});
afterAll(async () => {
  await db?.drop();
});

async function plan(query: string): Promise<string> {
  const rows = await sql.raw<{ 'QUERY PLAN': string }>(`EXPLAIN ${query}`).execute(db.db);
  return rows.rows.map((r) => r['QUERY PLAN']).join('\n');
}

describe('indexes', () => {
  it.each([
    [
      'state',
      `SELECT * FROM jobs WHERE service_id = '${service}' AND state = 'paused' ORDER BY id DESC LIMIT 21`,
      'jobs_service_state',
    ],
    [
      'labels',
      `SELECT * FROM jobs WHERE service_id = '${service}' AND labels @> '{"team":"a"}'::jsonb
       ORDER BY id DESC LIMIT 21`,
      'jobs_labels',
    ],
    [
      'name prefix',
      `SELECT * FROM jobs WHERE service_id = '${service}' AND name LIKE 'bill%' ORDER BY id DESC LIMIT 21`,
      'jobs_service_name_prefix',
    ],
    [
      'dead letters',
      `SELECT * FROM runs WHERE service_id = '${service}' AND status = 'dead' ORDER BY id DESC LIMIT 21`,
      'runs_service_status',
    ],
    [
      'in-flight check',
      `SELECT id FROM runs WHERE job_id = '${job}' AND status IN ('running', 'retrying')
       AND created_at > now() - interval '1 day' LIMIT 1`,
      'runs_job_in_flight',
    ],
    [
      'prune',
      `SELECT id FROM runs WHERE created_at < now() - interval '7 days'
       AND status NOT IN ('running', 'retrying') LIMIT 1000`,
      'runs_created',
    ],
  ])('serves the %s filter with its index', async (_what, query, index) => {
    const explained = await plan(query);
    expect(explained).toContain(index);
    expect(explained).not.toContain('Seq Scan');
  });
});
