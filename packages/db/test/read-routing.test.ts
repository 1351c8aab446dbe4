/**
 * The read router (`read-routing.ts`) on a real primary and streaming replica of the test's own:
 * where reads go (outside a request, past or short of a write mark), the lag it measures (0 when
 * idle, growing while replay is paused) and the replica falling out of use when it is too far
 * behind. The marks are kept in a Map here: what a store does is the api's (Redis, tested
 * end to end in e2e/replica.test.ts); the router's part is reading and comparing them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import { startPgReplica, type PgReplicaPair } from '@tickwork/testkit';
import { createDatabase, type DatabaseHandle } from '../src/database.ts';
import {
  ReadRouter,
  isConnectionFailure,
  lsnKey,
  lsnOfKey,
  parseLsn,
  type ReadTarget,
  type WatermarkStore,
} from '../src/read-routing.ts';

class MapMarks implements WatermarkStore {
  readonly marks = new Map<string, bigint>();
  async get(scopes: readonly string[]) {
    return scopes.map((scope) => this.marks.get(scope));
  }
  async raise(scopes: readonly string[], lsn: bigint) {
    for (const scope of scopes) {
      const current = this.marks.get(scope);
      if (current === undefined || current < lsn) this.marks.set(scope, lsn);
    }
  }
}

describe('LSNs', () => {
  it('parses the text form and keeps its order in the fixed-width key', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(() => parseLsn('16B374D848')).toThrow();
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (x, y) => {
        expect(lsnOfKey(lsnKey(x))).toBe(x);
        expect(lsnKey(x) < lsnKey(y)).toBe(x < y);
      }),
    );
  });

  it('tells a failed server or connection from a failed statement', () => {
    expect(isConnectionFailure(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isConnectionFailure(new Error('Query read timeout'))).toBe(true);
    expect(isConnectionFailure(Object.assign(new Error('x'), { code: '57P01' }))).toBe(true);
    expect(isConnectionFailure(Object.assign(new Error('x'), { code: '08006' }))).toBe(true);
    expect(isConnectionFailure(Object.assign(new Error('x'), { code: '42P01' }))).toBe(false);
    // "canceling statement due to conflict with recovery": the replica is fine, the read is retried.
    expect(isConnectionFailure(Object.assign(new Error('x'), { code: '40001' }))).toBe(false);
  });
});

describe('the read router on a real replica', () => {
  let pair: PgReplicaPair;
  let primary: DatabaseHandle;
  let replica: DatabaseHandle;
  let marks: MapMarks;
  let router: ReadRouter;

  beforeAll(async () => {
    pair = await startPgReplica({ applyDelayMs: 500, database: 'tw_read_routing' });
    primary = createDatabase({ url: pair.primary.url(), poolMax: 4 });
    replica = createDatabase({ url: pair.replica.url(), poolMax: 4, queryTimeoutMs: 1_000 });
    await sql`create table t (v int)`.execute(primary.db);
    await pair.caughtUp();
    marks = new MapMarks();
    router = new ReadRouter({ primary, replica, marks, maxLagMs: 1_500, checkEveryMs: 100 });
    await router.start();
  }, 60_000);

  afterAll(async () => {
    await router?.close();
    await replica?.close();
    await primary?.close();
    await pair?.stop();
  });

  /** Where one read of `reads`' scopes goes, by the router's counters. */
  async function targetOf(reads: string[] | undefined): Promise<ReadTarget> {
    const before = { ...router.reads };
    const read = () => sql`select count(*) from t`.execute(router.readDb);
    await (reads === undefined ? read() : router.run({ reads }, read));
    return router.reads.replica > before.replica ? 'replica' : 'primary';
  }

  async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(router.status())}`);
      await router.check();
      await new Promise((r) => setTimeout(r, 50)); // pacing between polls, not a wait for an event
    }
  }

  it('is ok with no lag while nothing is written, and reads outside a request on the primary', async () => {
    await pair.caughtUp();
    await until('lag 0', () => router.status().lagSeconds === 0);
    expect(router.status().state).toBe('ok');
    expect(await targetOf(undefined)).toBe('primary');
    expect(await targetOf([])).toBe('replica');
  });

  it('reads a scope on the primary until the replica has replayed past its mark', async () => {
    await sql`insert into t values (1)`.execute(primary.db);
    await router.markWritten(['svc:a']);
    expect(await targetOf(['svc:a'])).toBe('primary');
    expect(await targetOf(['svc:b'])).toBe('replica');
    await pair.caughtUp();
    await until('a replica read of svc:a', async () => (await targetOf(['svc:a'])) === 'replica');
    const { rows } = await router.run({ reads: ['svc:a'] }, () =>
      sql<{ n: number }>`select count(*)::int as n from t`.execute(router.readDb),
    );
    expect(rows[0]!.n).toBe(1);
  });

  it('measures a growing lag while replay is paused, and stops using the replica past maxLagMs', async () => {
    await pair.pauseReplay();
    try {
      const started = Date.now();
      await until(
        'the replica to fall too far behind',
        async () => {
          await sql`insert into t values (2)`.execute(primary.db);
          return router.status().state === 'degraded';
        },
        15_000,
      );
      const status = router.status();
      expect(status.reason).toMatch(/behind/);
      expect(status.lagSeconds!).toBeGreaterThan(1.5);
      expect(status.lagSeconds!).toBeLessThanOrEqual((Date.now() - started) / 1000 + 0.5);
      expect(status.lagBytes!).toBeGreaterThan(0);
      expect(await targetOf([])).toBe('primary');
    } finally {
      await pair.resumeReplay();
    }
    await until('the replica back', () => router.status().state === 'ok', 15_000);
    expect(await targetOf([])).toBe('replica');
  });
});
