import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';
import {
  findRunById,
  insertJob,
  insertService,
  recordOccurrence,
  recordOutcomeGrouped,
  type RunOutcome,
} from '../src/index.ts';

/** Seals the target headers the test's jobs are written with. */
const KEYS = { current: 'test-secret-key-0123456789-0123456789' };

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function aRun(service: { id: string }, jobId?: string) {
  let id = jobId;
  if (!id) {
    const spec = buildJobSpec(
      { name: `j-${uuidv7()}`, schedule: { every: '1s' }, target: { url: 'http://127.0.0.1:9/' } },
      { now: Date.now() },
    );
    id = (
      await insertJob(
        db.db,
        {
          ...spec,
          id: uuidv7(),
          serviceId: service.id,
          state: 'active',
          now: new Date(),
          nextRunAt: null,
        },
        KEYS,
      )
    ).id;
  }
  const { run } = await recordOccurrence(db.db, {
    id: uuidv7(),
    jobId: id,
    serviceId: service.id,
    jobVersion: 1,
    scheduledFor: new Date(Date.now() + Math.random() * 1e9),
    trigger: 'schedule',
    status: 'running',
  });
  return { id: run.id, jobId: id };
}

const ok = (excerpt = 'ok'): RunOutcome => ({
  status: 'succeeded',
  httpStatus: 200,
  durationMs: 3,
  responseExcerpt: excerpt,
  error: null,
});

describe('recordOutcomeGrouped', () => {
  it("writes outcomes that arrive together as separate statements would, a job's in the order they came", async () => {
    const service = await insertService(db.db, { id: uuidv7(), name: `svc-${uuidv7()}`, signingSecret: 'x' });
    const runs = await Promise.all(Array.from({ length: 12 }, () => aRun(service)));
    const first = await aRun(service);
    const second = await aRun(service, first.jobId);
    const next = new Date('2030-01-01T00:00:00Z');
    await Promise.all([
      ...runs.map((run, i) =>
        recordOutcomeGrouped(
          db.db,
          run,
          { ...ok(`r${i}`), httpStatus: 200 + i },
          { version: 1, nextRunAt: next, complete: false },
        ),
      ),
      recordOutcomeGrouped(db.db, first, ok(), { version: 1, nextRunAt: next, complete: false }),
      // The same job's later outcome: the job ends with it (completed, no next run).
      recordOutcomeGrouped(
        db.db,
        second,
        { status: 'dead', httpStatus: 503, durationMs: 5, responseExcerpt: null, error: 'HTTP 503' },
        { version: 1, nextRunAt: null, complete: true },
      ),
    ]);
    for (const [i, run] of runs.entries()) {
      expect(await findRunById(db.db, run.id)).toMatchObject({
        status: 'succeeded',
        http_status: 200 + i,
        response_excerpt: `r${i}`,
        duration_ms: 3,
      });
      expect((await findRunById(db.db, run.id))?.finished_at).toBeInstanceOf(Date);
    }
    const jobs = await db.db
      .selectFrom('jobs')
      .select(['id', 'state', 'next_run_at', 'last_run_status', 'last_run_at'])
      .where('service_id', '=', service.id)
      .execute();
    const byId = new Map(jobs.map((j) => [j.id, j]));
    for (const run of runs)
      expect(byId.get(run.jobId)).toMatchObject({ state: 'active', next_run_at: next, last_run_status: 'succeeded' });
    expect(byId.get(first.jobId)).toMatchObject({ state: 'completed', next_run_at: null, last_run_status: 'dead' });
    expect(await findRunById(db.db, second.id)).toMatchObject({ status: 'dead', error: 'HTTP 503' });
  });

  it('leaves the schedule fields of a job at another version, and leaves a retrying run open', async () => {
    const service = await insertService(db.db, { id: uuidv7(), name: `svc-${uuidv7()}`, signingSecret: 'x' });
    const [a, b] = await Promise.all([aRun(service), aRun(service)]);
    await db.db.updateTable('jobs').set({ version: 2 }).where('id', '=', a!.jobId).execute();
    await Promise.all([
      recordOutcomeGrouped(db.db, a!, ok(), { version: 1, nextRunAt: null, complete: true }),
      recordOutcomeGrouped(
        db.db,
        b!,
        { status: 'retrying', httpStatus: 500, durationMs: 1, responseExcerpt: '', error: 'HTTP 500' },
        { version: 1, nextRunAt: new Date(), complete: false },
      ),
    ]);
    expect(
      await db.db.selectFrom('jobs').select(['state', 'last_run_status']).where('id', '=', a!.jobId).executeTakeFirst(),
    ).toEqual({ state: 'active', last_run_status: 'succeeded' });
    expect(await findRunById(db.db, b!.id)).toMatchObject({ status: 'retrying', finished_at: null });
  });

  it('fails only the caller whose outcome Postgres refuses', async () => {
    const service = await insertService(db.db, { id: uuidv7(), name: `svc-${uuidv7()}`, signingSecret: 'x' });
    const runs = await Promise.all(Array.from({ length: 5 }, () => aRun(service)));
    const results = await Promise.allSettled(
      // A NUL byte cannot be stored in a text column.
      runs.map((run, i) => recordOutcomeGrouped(db.db, run, ok(i === 2 ? 'bad\u0000byte' : 'fine'))),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(await findRunById(db.db, runs[0]!.id)).toMatchObject({ status: 'succeeded', response_excerpt: 'fine' });
    expect(await findRunById(db.db, runs[2]!.id)).toMatchObject({ status: 'running' });
  });
});
