/**
 * The group commit of creates (`insertJobRecordedGrouped`): creates made together go as one statement, and
 * each caller gets its own row and history entry, or its own error, as a lone create would; the
 * `maxJobs` quota stays exact when a group would pass it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';
import {
  insertJobRecorded,
  insertJobRecordedGrouped,
  insertJobsRecorded,
  insertService,
  isMaxJobsViolation,
  isUniqueViolation,
  jobFromRow,
  listVersions,
  newJobValues,
  type NewJob,
  type VersionStamp,
} from '../src/index.ts';

const KEYS = { current: 'test-secret-key-0123456789-0123456789' };
const NOW = Date.parse('2026-06-01T00:00:00Z');

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('tw_create_group');
});
afterAll(async () => {
  await db?.drop();
});

async function aService(maxJobs?: number): Promise<string> {
  return (await insertService(db.db, { id: uuidv7(), name: `svc-${uuidv7()}`, signingSecret: 'x', maxJobs })).id;
}

async function serviceJobCount(serviceId: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select service_job_count(${serviceId}) as n`.execute(db.db);
  return rows[0]!.n;
}

function aJob(serviceId: string, name: string, headers: Record<string, string> = {}): NewJob {
  const spec = buildJobSpec(
    {
      name,
      labels: { team: name },
      schedule: { every: '1h' },
      target: { url: 'http://127.0.0.1:9/', headers, body: { name } },
    },
    { now: NOW, bodyText: JSON.stringify({ name }) },
  );
  return {
    ...spec,
    id: uuidv7(),
    serviceId,
    state: 'active',
    now: new Date(NOW),
    nextRunAt: new Date(NOW + 3_600_000),
  };
}

const stampOf = (actor: string): VersionStamp => ({
  id: uuidv7(),
  change: 'create',
  actor: { kind: 'key', id: actor },
  at: new Date(NOW),
});

describe('insertJobsRecorded', () => {
  it('writes each create as its own row and history entry, in the creates order', async () => {
    const serviceId = await aService();
    const jobs = ['b', 'a', 'c'].map((name, i) => aJob(serviceId, name, i === 1 ? { authorization: 'secret' } : {}));
    const stamps = jobs.map((_, i) => stampOf(`key-${i}`));
    const rows = await insertJobsRecorded(
      db.db,
      jobs.map((job, i) => ({ values: newJobValues(job, KEYS), stamp: stamps[i]! })),
    );
    expect(rows.map((r) => r.id)).toEqual(jobs.map((j) => j.id));
    for (const [i, row] of rows.entries()) {
      const job = jobFromRow(row, KEYS);
      expect(job.name).toBe(jobs[i]!.name);
      expect(job.labels).toEqual({ team: jobs[i]!.name });
      expect(job.target.bodyText).toBe(JSON.stringify({ name: jobs[i]!.name }));
      expect(job.target.headers).toEqual(i === 1 ? { authorization: 'secret' } : {});
      expect(row.next_run_at).toEqual(new Date(NOW + 3_600_000));
      const history = await listVersions(db.db, serviceId, row.id, { limit: 10 });
      expect(history.items.map((v) => [v.id, v.actor_id, v.version])).toEqual([[stamps[i]!.id, `key-${i}`, 1]]);
      expect((history.items[0]!.definition as { name: string }).name).toBe(jobs[i]!.name);
    }
    // The sealed headers are copied sealed into the history, as the job holds them.
    const history = await listVersions(db.db, serviceId, rows[1]!.id, { limit: 1 });
    expect((history.items[0]!.definition as { target_headers: string }).target_headers).toBe(rows[1]!.target_headers);
    expect(rows[1]!.target_headers).not.toContain('secret');
  });
});

describe('insertJobRecordedGrouped', () => {
  it('fails only the create whose name is taken, with the error a lone create gets', async () => {
    const serviceId = await aService();
    await insertJobRecorded(db.db, aJob(serviceId, 'taken'), stampOf('k'), KEYS);
    const names = ['n0', 'n1', 'taken', 'n3', 'n4', 'n1'];
    const results = await Promise.allSettled(
      names.map((name) => insertJobRecordedGrouped(db.db, aJob(serviceId, name), stampOf('k'), KEYS)),
    );
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    // The second n1 may be the one that lost or won: exactly one of the two did.
    expect(failed).toContain(2);
    expect(failed.filter((i) => i === 1 || i === 5)).toHaveLength(1);
    expect(failed).toHaveLength(2);
    for (const i of failed) expect(isUniqueViolation((results[i] as PromiseRejectedResult).reason)).toBe(true);
    expect(await serviceJobCount(serviceId)).toBe(5);
  });

  it('keeps maxJobs exact when the creates arriving together would pass it', async () => {
    const serviceId = await aService(10);
    await insertJobRecorded(db.db, aJob(serviceId, 'first'), stampOf('k'), KEYS);
    const results = await Promise.allSettled(
      Array.from({ length: 25 }, (_, i) =>
        insertJobRecordedGrouped(db.db, aJob(serviceId, `q-${i}`), stampOf('k'), KEYS),
      ),
    );
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(results.length - rejected.length).toBe(9);
    for (const r of rejected) expect(isMaxJobsViolation(r.reason)).toBe(true);
    expect(await serviceJobCount(serviceId)).toBe(10);
    const { rows } = await db.pool.query('select count(*)::int as n from jobs where service_id = $1', [serviceId]);
    expect(rows[0].n).toBe(10);
  });

  it('answers the creates of several services in one group, each in its own service', async () => {
    const services = [await aService(), await aService()];
    const rows = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        insertJobRecordedGrouped(db.db, aJob(services[i % 2]!, `m-${i}`), stampOf('k'), KEYS),
      ),
    );
    expect(rows.map((r) => [r.name, r.service_id])).toEqual(
      Array.from({ length: 10 }, (_, i) => [`m-${i}`, services[i % 2]]),
    );
    // Made in the same turn, they went as one statement: one transaction wrote them all.
    const { rows: xmins } = await sql<{ n: number }>`
      select count(distinct xmin::text)::int as n from jobs where id = any(${rows.map((r) => r.id)}::uuid[])`.execute(
      db.db,
    );
    expect(xmins[0]!.n).toBe(1);
    expect(await serviceJobCount(services[0]!)).toBe(5);
    expect(await serviceJobCount(services[1]!)).toBe(5);
  });
});
