/**
 * `lockAndRecordOnTime` restates core's rules of a scheduled occurrence in SQL, for speed: it
 * records the run only when every rule passes. This holds the two to the same verdict on real
 * Postgres: for generated job rows (state, version, overlap, window, maxRuns, skip asked for,
 * jitter, misfire grace, calendars, a disabled service, a run already recorded) and instants
 * around each boundary, the statement records a run exactly when `judgeOccurrence` says
 * `deliver` without asking anything more (the job lists no calendars — those are decided where
 * they are read — and no run holds the occurrence yet), and writes nothing otherwise.
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
  recordOccurrence,
  setServiceDisabled,
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

describe('lockAndRecordOnTime against judgeOccurrence', () => {
  it('records a run exactly when the core verdict is an on-time delivery, and nothing otherwise', async () => {
    let recordedCases = 0;
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
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

        const facts: OccurrenceFacts = {
          job,
          skipUntil: at(c.skipUntil)?.getTime() ?? null,
          runCount: c.runCount,
          serviceDisabled: c.disabled,
          version: occurrenceVersion,
          scheduledFor: c.scheduledFor,
          now,
          mayWait: c.mayWait,
          // A calendar that excludes nothing: the statement leaves every job with calendars to TypeScript.
          excluded: false,
        };
        const verdict = judgeOccurrence(facts);
        const expected = verdict.kind === 'deliver' && !c.calendars && !c.recorded;

        const result = await lockAndRecordOnTime(db.db, {
          runId: uuidv7(),
          jobId: id,
          version: occurrenceVersion,
          scheduledFor: c.scheduledFor,
          workerId: 'prop',
          now,
          jitterHash: jitterHash(jitterKeyOf(id, c.scheduledFor)),
          mayWait: c.mayWait,
        });
        expect(result, 'the job exists: the statement reads it').toBeDefined();
        expect({ recorded: result?.runId !== undefined, verdict }).toEqual({ recorded: expected, verdict });
        // What the statement read is the row it locked, before its own write.
        expect(result?.found.job.run_count).toBe(c.runCount);
        expect(result?.found.service.disabled).toBe(c.disabled);

        const after = await sql<{ run_count: number; runs: number; attempts: number | null }>`
          select j.run_count, (select count(*)::int from runs r where r.job_id = j.id) as runs,
            (select attempts from runs r where r.id = ${result?.runId ?? null}::uuid) as attempts
          from jobs j where j.id = ${id}`.execute(db.db);
        const row = after.rows[0]!;
        if (expected) recordedCases++;
        expect(row).toEqual({
          run_count: c.runCount + (expected ? 1 : 0),
          runs: (c.recorded ? 1 : 0) + (expected ? 1 : 0),
          attempts: expected ? 1 : null,
        });
      }),
      { numRuns: 1_000 },
    );
    // Both sides of the predicate were exercised, not only its refusals.
    expect(recordedCases).toBeGreaterThan(50);
  }, 120_000);
});
