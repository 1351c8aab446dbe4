/**
 * `lockAndRecordOnTimeMany` (and `lockAndRecordOnTime`, its group of one) restates core's rules of a
 * scheduled occurrence in SQL, for speed: it
 * records the run only when every rule passes. This holds the two to the same verdict on real
 * Postgres: for generated job rows (state, version, overlap, window, maxRuns, skip asked for,
 * jitter, misfire grace, calendars, a disabled service, a run already recorded) and instants
 * around each boundary, the statement records a run exactly when `judgeOccurrence` says
 * `deliver` without asking anything more (the job lists no calendars — those are decided where
 * they are read — and no run holds the occurrence yet), and writes nothing otherwise. The same
 * for the grouped statement (`lockAndRecordOnTimeMany`: several jobs' occurrences in one, mixed
 * verdicts side by side) and for the group that feeds it (`lockAndRecordOnTimeGrouped`), where a
 * second occurrence of a job sent together with the first — a redelivery of the same instant, or
 * the next one — is decided after it, seeing its run and its `run_count`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import {
  buildJobSpec,
  dueAtOf,
  jitterHash,
  jitterKeyOf,
  judgeOccurrence,
  uuidv7,
  type JobState,
  type OccurrenceFacts,
} from '@tickwork/core';
import { createTestDatabase, type TestDatabase } from '@tickwork/testkit';
import {
  insertCalendar,
  insertJob,
  insertService,
  lockAndRecordOnTime,
  lockAndRecordOnTimeGrouped,
  lockAndRecordOnTimeMany,
  recordOccurrence,
  setServiceDisabled,
  type OnTimeOccurrence,
  type OnTimeRecord,
} from '../src/index.ts';

const KEYS = { current: 'test-secret-key-0123456789-0123456789' };
const BASE = Date.parse('2026-06-01T00:00:00Z');

let db: TestDatabase;
/** An enabled service and a disabled one, each with a calendar its jobs may list. */
const services: Record<'enabled' | 'disabled', { id: string; calendarId: string }> = {} as never;

beforeAll(async () => {
  db = await createTestDatabase('tw_on_time');
  for (const kind of ['enabled', 'disabled'] as const) {
    const service = await insertService(db.db, { id: uuidv7(), name: `svc-${kind}`, signingSecret: 'x' });
    const calendar = await insertCalendar(db.db, {
      id: uuidv7(),
      serviceId: service.id,
      name: 'never',
      timezone: 'UTC',
      dates: [],
      ranges: [],
      now: new Date(),
    });
    if (kind === 'disabled') await setServiceDisabled(db.db, service.id, true);
    services[kind] = { id: service.id, calendarId: calendar.id };
  }
});
afterAll(async () => {
  await db?.drop();
});

/**
 * Mostly the value a rule lets through, sometimes the one it stops: an occurrence must pass every
 * rule to be recorded, so each one passes often enough for whole passing rows to be common.
 */
const mostly = <T>(usual: T, other: T) => fc.oneof({ weight: 7, arbitrary: fc.constant(usual) }, fc.constant(other));
/** An offset in ms from an instant: on it, beside it by one, or anywhere near. */
const near = fc.oneof(fc.constantFrom(-1, 0, 1), fc.integer({ min: -120_000, max: 120_000 }));
/**
 * A bound as an offset from the occurrence's instant: none, one that lets it through (on the
 * instant itself — where a `<` written for a `<=` shows — or on the side `passes` names), or any.
 */
const bound = (passes: 1 | -1) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant(null) },
    { weight: 2, arbitrary: fc.constantFrom(0, 0, passes, passes * 60_000) },
    { weight: 1, arbitrary: near },
  );

const cases = fc.record({
  disabled: mostly(false, true),
  state: fc.constantFrom<JobState>('active', 'active', 'active', 'active', 'active', 'paused', 'completed'),
  version: fc.integer({ min: 1, max: 3 }),
  superseded: mostly(false, true),
  overlap: mostly<'allow' | 'skip'>('allow', 'skip'),
  calendars: mostly(false, true),
  /** Offsets from the occurrence's instant. */
  startAt: bound(-1),
  endAt: bound(1),
  skipUntil: bound(-1),
  maxRuns: fc.oneof({ weight: 2, arbitrary: fc.constant(null) }, fc.integer({ min: 1, max: 4 })),
  runCount: fc.integer({ min: 0, max: 3 }),
  jitterMs: fc.constantFrom(0, 1, 999, 30_000),
  graceMs: fc.constantFrom(0, 1, 1_000, 60_000),
  policy: fc.constantFrom<'skip' | 'fire_once'>('skip', 'fire_once'),
  mayWait: fc.boolean(),
  /**
   * `now`, from the occurrence's due time (its instant plus jitter) or from the end of its grace:
   * on either, beside either by one ms, or anywhere near.
   */
  nowFrom: fc.constantFrom<'due' | 'grace'>('due', 'grace'),
  nowOffset: near,
  recorded: mostly(false, true),
  scheduledFor: fc.integer({ min: 0, max: 365 * 86_400_000 }).map((ms) => BASE + ms),
});

type Case = typeof cases extends fc.Arbitrary<infer T> ? T : never;

/** A job written as the case says, its occurrence, and the facts core judges it by. */
async function setUp(c: Case) {
  const service = services[c.disabled ? 'disabled' : 'enabled'];
  const spec = buildJobSpec(
    { name: `p-${uuidv7()}`, schedule: { every: '1m' }, target: { url: 'http://127.0.0.1:9/' } },
    { now: BASE },
  );
  const { id } = await insertJob(
    db.db,
    { ...spec, id: uuidv7(), serviceId: service.id, state: 'active', now: new Date(BASE), nextRunAt: null },
    KEYS,
  );
  const at = (offset: number | null) => (offset === null ? null : new Date(c.scheduledFor + offset));
  const misfire = { policy: c.policy, graceMs: c.graceMs };
  const job = {
    id,
    state: c.state,
    version: c.version,
    overlap: c.overlap,
    startAt: at(c.startAt)?.getTime() ?? null,
    endAt: at(c.endAt)?.getTime() ?? null,
    maxRuns: c.maxRuns,
    jitterMs: c.jitterMs,
    misfire,
  };
  const occurrenceVersion = c.superseded ? c.version + 1 : c.version;
  if (c.recorded) {
    await recordOccurrence(db.db, {
      id: uuidv7(),
      jobId: id,
      serviceId: service.id,
      jobVersion: occurrenceVersion,
      scheduledFor: new Date(c.scheduledFor),
      trigger: 'schedule',
      status: 'running',
    });
  }
  await sql`
    update jobs set state = ${c.state}, version = ${c.version}, overlap = ${c.overlap},
      calendar_ids = ${c.calendars ? [service.calendarId] : []}::uuid[],
      start_at = ${at(c.startAt)}::timestamptz, end_at = ${at(c.endAt)}::timestamptz,
      skip_until = ${at(c.skipUntil)}::timestamptz, max_runs = ${c.maxRuns}::integer,
      run_count = ${c.runCount}, jitter_ms = ${c.jitterMs}, misfire = ${JSON.stringify(misfire)}::jsonb
    where id = ${id}`.execute(db.db);
  const due = dueAtOf(job, c.scheduledFor);
  const now = (c.nowFrom === 'due' ? due : due + c.graceMs) + c.nowOffset;

  /** The facts of an occurrence of this job at `scheduledFor` once `runs` more runs were counted. */
  const facts = (scheduledFor: number, runs: number): OccurrenceFacts => ({
    job,
    skipUntil: at(c.skipUntil)?.getTime() ?? null,
    runCount: c.runCount + runs,
    serviceDisabled: c.disabled,
    version: occurrenceVersion,
    scheduledFor,
    now,
    mayWait: c.mayWait,
    // A calendar that excludes nothing: the statement leaves every job with calendars to TypeScript.
    excluded: false,
  });
  const occurrence = (scheduledFor: number): OnTimeOccurrence => ({
    runId: uuidv7(),
    jobId: id,
    version: occurrenceVersion,
    scheduledFor,
    workerId: 'prop',
    now,
    jitterHash: jitterHash(jitterKeyOf(id, scheduledFor)),
    mayWait: c.mayWait,
  });
  return { id, facts, occurrence };
}

/** Whether core delivers the occurrence asking nothing, and the statement may record it. */
const expectedOf = (c: Case, facts: OccurrenceFacts, recorded: boolean) => {
  const verdict = judgeOccurrence(facts);
  return { expected: verdict.kind === 'deliver' && !c.calendars && !recorded, verdict };
};

/** What the statement's answer and the job's rows say, against what core expected. */
async function check(
  c: Case,
  id: string,
  results: Array<{ result: OnTimeRecord | undefined; expected: boolean; verdict: unknown; runsBefore: number }>,
) {
  for (const { result, expected, verdict, runsBefore } of results) {
    expect(result, 'the job exists: the statement reads it').toBeDefined();
    expect({ recorded: result?.runId !== undefined, verdict }).toEqual({ recorded: expected, verdict });
    // What the statement read is the row it locked, before its own write.
    expect(result?.found.job.run_count).toBe(c.runCount + runsBefore);
    expect(result?.found.service.disabled).toBe(c.disabled);
  }
  const recordedIds = results.flatMap(({ result }) => (result?.runId ? [result.runId] : []));
  const after = await sql<{ run_count: number; runs: number; attempts: number[] }>`
    select j.run_count, (select count(*)::int from runs r where r.job_id = j.id) as runs,
      array(select attempts from runs r where r.id = any(${recordedIds}::uuid[])) as attempts
    from jobs j where j.id = ${id}`.execute(db.db);
  const recorded = results.filter((r) => r.expected).length;
  expect(after.rows[0]).toEqual({
    run_count: c.runCount + recorded,
    runs: (c.recorded ? 1 : 0) + recorded,
    attempts: recordedIds.map(() => 1),
  });
  return recorded;
}

describe('lockAndRecordOnTime against judgeOccurrence', () => {
  it('records a run exactly when the core verdict is an on-time delivery, and nothing otherwise', async () => {
    let recordedCases = 0;
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const { id, facts, occurrence } = await setUp(c);
        const { expected, verdict } = expectedOf(c, facts(c.scheduledFor, 0), c.recorded);
        const result = await lockAndRecordOnTime(db.db, occurrence(c.scheduledFor));
        recordedCases += await check(c, id, [{ result, expected, verdict, runsBefore: 0 }]);
      }),
      { numRuns: 1_000 },
    );
    // Both sides of the predicate were exercised, not only its refusals.
    expect(recordedCases).toBeGreaterThan(50);
  }, 120_000);

  it('gives each occurrence of a grouped statement the verdict its own statement would', async () => {
    let recordedCases = 0;
    let mixed = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(cases, { minLength: 2, maxLength: 6 }), async (group) => {
        const jobs = await Promise.all(group.map(setUp));
        const expectations = group.map((c, i) => expectedOf(c, jobs[i]!.facts(c.scheduledFor, 0), c.recorded));
        const results = await lockAndRecordOnTimeMany(
          db.db,
          group.map((c, i) => jobs[i]!.occurrence(c.scheduledFor)),
        );
        expect(results).toHaveLength(group.length);
        for (const [i, c] of group.entries()) {
          const { expected, verdict } = expectations[i]!;
          recordedCases += await check(c, jobs[i]!.id, [{ result: results[i], expected, verdict, runsBefore: 0 }]);
        }
        if (new Set(expectations.map((e) => e.expected)).size > 1) mixed++;
      }),
      { numRuns: 200 },
    );
    expect(recordedCases).toBeGreaterThan(50);
    // Groups where some occurrences are recorded and others refused, side by side.
    expect(mixed).toBeGreaterThan(20);
  }, 120_000);

  it("decides two occurrences of one job sent together one after the other, the second seeing the first's run", async () => {
    let twiceRecorded = 0;
    let redeliveries = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(cases, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        // The same instant again (a redelivery) or the job's next instant.
        fc.constantFrom(0, 60_000),
        async (drawn, pick, step) => {
          const twinOf = pick % drawn.length;
          // The twin's job never waits for its instant, so a later instant is often recorded too.
          const group = drawn.map((g, i) => (i === twinOf ? { ...g, mayWait: false } : g));
          const jobs = await Promise.all(group.map(setUp));
          const c = group[twinOf]!;
          const twinAt = c.scheduledFor + step;
          const expectations = group.map((g, i) => expectedOf(g, jobs[i]!.facts(g.scheduledFor, 0), g.recorded));
          const first = expectations[twinOf]!.expected;
          const twinExpectation = expectedOf(
            c,
            jobs[twinOf]!.facts(twinAt, first ? 1 : 0),
            step === 0 ? c.recorded || first : false,
          );
          const all = [...group.map((g, i) => jobs[i]!.occurrence(g.scheduledFor)), jobs[twinOf]!.occurrence(twinAt)];
          const results = await Promise.all(all.map((o) => lockAndRecordOnTimeGrouped(db.db, o)));
          for (const [i, g] of group.entries()) {
            const own = { result: results[i], ...expectations[i]!, runsBefore: 0 };
            const twin = { result: results[group.length], ...twinExpectation, runsBefore: first ? 1 : 0 };
            await check(g, jobs[i]!.id, i === twinOf ? [own, twin] : [own]);
          }
          if (first && twinExpectation.expected) twiceRecorded++;
          if (step === 0 && first) {
            redeliveries++;
            // The second delivery of an occurrence just recorded finds its run and writes nothing.
            expect(results[group.length]?.runId).toBeUndefined();
          }
        },
      ),
      { numRuns: 300 },
    );
    expect(twiceRecorded).toBeGreaterThan(5);
    expect(redeliveries).toBeGreaterThan(5);
  }, 120_000);
});
