/**
 * `jobs.target_body` (migration 0004): a body's bytes as sent, beside the `target` jsonb that
 * reorders them. A row without it (older than the migration, or written by an older api during a
 * rolling deploy) still reads with its body from `target`; a row written now has both, so the
 * workers of the previous version still find a body where they look for it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { findJobById, insertJob, jobFromRow } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';

/** Seals the target headers the test's jobs are written with. */
const KEYS = { current: 'test-secret-key-0123456789-0123456789' };

let db: TestDatabase;
let serviceId: string;
beforeAll(async () => {
  db = await createTestDatabase('tw_target_body');
  serviceId = uuidv7();
  await sql`INSERT INTO services (id, name, signing_secret) VALUES (${serviceId}, 'bodies', 'x')`.execute(db.db);
});
afterAll(async () => {
  await db?.drop();
});

describe('target_body', () => {
  it('keeps the bytes as sent, and the body in target for older readers', async () => {
    const text = '{"b": 1, "a": 2, "1": 3}';
    const now = Date.now();
    const spec = buildJobSpec(
      { name: 'kept', schedule: { every: '1h' }, target: { url: 'https://example.com', body: JSON.parse(text) } },
      { now, bodyText: text },
    );
    const id = uuidv7();
    const row = await insertJob(
      db.db,
      {
        ...spec,
        id,
        serviceId,
        state: 'active',
        now: new Date(now),
        nextRunAt: null,
      },
      KEYS,
    );
    expect(row.target_body).toBe(text);
    expect((row.target as { body?: unknown }).body).toEqual({ a: 2, b: 1, 1: 3 });
    expect(jobFromRow(row, KEYS).target).toMatchObject({ body: JSON.parse(text), bodyText: text });
  });

  it('reads a row without it from target', async () => {
    const id = uuidv7();
    await sql`
      INSERT INTO jobs (id, service_id, name, schedule, target, misfire, retry, state, created_at, updated_at)
      VALUES (${id}, ${serviceId}, 'old', '{"every":"1h"}',
        '{"url":"https://example.com","method":"POST","headers":{},"timeoutMs":1000,"body":"plain"}',
        '{}', '{}', 'active', now(), now())`.execute(db.db);
    const row = (await findJobById(db.db, id))!;
    expect(row.target_body).toBeNull();
    expect(jobFromRow(row, KEYS).target).toMatchObject({ body: 'plain', bodyText: '"plain"' });
  });
});
