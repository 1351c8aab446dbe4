/**
 * The error predicates against the errors a real Postgres raises: each answers yes to its own
 * failure and no to every other one.
 */
import { createServer } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { isConnectionError, isForeignKeyViolation, isMaxJobsViolation, isUniqueViolation } from '../src/errors.ts';
import { insertJob, insertRequestedRun, insertService } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';

/** Seals the target headers the test's jobs are written with. */
const KEYS = { current: 'test-secret-key-0123456789-0123456789' };

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('tw_errors');
});
afterAll(async () => {
  await db?.drop();
});

const now = Date.now();
const spec = (name: string) =>
  buildJobSpec(
    { name, schedule: { every: '1h' }, target: { url: 'https://example.com/hook' } },
    { now, limits: { minIntervalMs: 1_000 } },
  );
const service = (name: string, maxJobs?: number) =>
  insertService(db.db, { id: uuidv7(), name, signingSecret: 'sealed', ...(maxJobs === undefined ? {} : { maxJobs }) });
const job = (serviceId: string, name: string) =>
  insertJob(
    db.db,
    { ...spec(name), id: uuidv7(), serviceId, state: 'active', now: new Date(now), nextRunAt: null },
    KEYS,
  );

/** The rejection of `work`, which must fail. */
async function failureOf(work: () => Promise<unknown>): Promise<unknown> {
  return work().then(
    () => expect.unreachable('the statement succeeded'),
    (error: unknown) => error,
  );
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('Postgres error predicates', () => {
  it('tell a unique violation, a foreign key violation, a full service and an absent Postgres apart', async () => {
    const first = await service('errors-unique');
    const full = await service('errors-full', 0);
    await job(first.id, 'taken');
    const port = await closedPort();

    const failures = {
      unique: await failureOf(() => job(first.id, 'taken')),
      foreignKey: await failureOf(() =>
        insertRequestedRun(db.db, {
          id: uuidv7(),
          jobId: uuidv7(),
          serviceId: first.id,
          jobVersion: 1,
          trigger: 'manual',
          now,
        }),
      ),
      maxJobs: await failureOf(() => job(full.id, 'one-too-many')),
      connection: await failureOf(() =>
        new pg.Client({ host: '127.0.0.1', port, user: 'postgres', connectionTimeoutMillis: 1_000 }).connect(),
      ),
    };
    const answers = Object.fromEntries(
      Object.entries(failures).map(([kind, error]) => [
        kind,
        {
          unique: isUniqueViolation(error),
          foreignKey: isForeignKeyViolation(error),
          maxJobs: isMaxJobsViolation(error),
          connection: isConnectionError(error),
        },
      ]),
    );
    expect(answers).toEqual({
      unique: { unique: true, foreignKey: false, maxJobs: false, connection: false },
      foreignKey: { unique: false, foreignKey: true, maxJobs: false, connection: false },
      maxJobs: { unique: false, foreignKey: false, maxJobs: true, connection: false },
      connection: { unique: false, foreignKey: false, maxJobs: false, connection: true },
    });
  });

  it('answer no to what is not a Postgres error', () => {
    for (const value of [undefined, null, 'text', 23505, new Error('boom')]) {
      expect(
        [isUniqueViolation, isForeignKeyViolation, isMaxJobsViolation, isConnectionError].map((p) => p(value)),
      ).toEqual([false, false, false, false]);
    }
  });
});
