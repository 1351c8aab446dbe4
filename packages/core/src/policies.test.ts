import { describe, expect, it } from 'vitest';
import { buildJobSpec, type Job } from './job.ts';
import {
  catchUpOf,
  dueAtOf,
  judgeOccurrence,
  misfireVerdict,
  outsideLimits,
  type OccurrenceFacts,
} from './policies.ts';
import { applyJobPatch, ifMatchAllows, mergePatch } from './patch.ts';
import { canonicalJson, parseIdempotencyKey, requestFingerprint } from './idempotency.ts';
import { TickworkError } from './errors.ts';

const now = Date.parse('2026-06-01T12:00:00Z');

function aJob(overrides: Partial<Job> = {}, body: Record<string, unknown> = {}): Job {
  const spec = buildJobSpec(
    { name: 'j', schedule: { every: '1m' }, target: { url: 'https://example.com/hook' }, ...body } as never,
    { now },
  );
  return {
    ...spec,
    id: '0190b9a0-0000-7000-8000-000000000001',
    serviceId: 's',
    state: 'active',
    version: 1,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

describe('misfire', () => {
  it('is on time within the grace period, counted from the jittered due time', () => {
    const job = aJob({ jitterMs: 5_000 });
    const due = dueAtOf(job, now);
    expect(due).toBeGreaterThanOrEqual(now);
    expect(due).toBeLessThanOrEqual(now + 5_000);
    expect(misfireVerdict(job, now, due + 60_000, false)).toBe('on_time');
    expect(misfireVerdict(job, now, due + 60_001, false)).toBe('catch_up');
  });
  it('delivers one catch-up under fire_once and none under skip', () => {
    const late = now + 10 * 60_000;
    expect(misfireVerdict(aJob(), now, late, false)).toBe('catch_up');
    expect(misfireVerdict(aJob(), now, late, true)).toBe('missed');
    const skip = aJob({ misfire: { policy: 'skip', graceMs: 1_000 } });
    expect(misfireVerdict(skip, now, now + 1_000, false)).toBe('on_time');
    expect(misfireVerdict(skip, now, now + 1_001, false)).toBe('missed');
  });
  it('names the one occurrence a rebuilt registration may catch up', () => {
    const job = aJob({ createdAt: now, startAt: null });
    // Every minute from creation; last recorded run 10 minutes ago, now 5 minutes late.
    const last = now + 60_000;
    const at = now + 11 * 60_000 + 5 * 60_000;
    expect(catchUpOf(job, last, at)).toBe(now + 16 * 60_000);
    expect(catchUpOf({ ...job, misfire: { policy: 'skip', graceMs: 10_000 } }, last, at + 30_000)).toBeUndefined();
    // Within the grace period it is owed under either policy.
    expect(catchUpOf({ ...job, misfire: { policy: 'skip', graceMs: 60_000 } }, last, now + 16 * 60_000 + 1_000)).toBe(
      now + 16 * 60_000,
    );
    expect(catchUpOf(job, now + 16 * 60_000, now + 16 * 60_000 + 1_000)).toBeUndefined();
    expect(catchUpOf({ ...job, state: 'paused' }, last, at)).toBeUndefined();
    expect(catchUpOf({ ...job, maxRuns: 3 }, last, at, 3)).toBeUndefined();
  });
});

describe('window and maxRuns', () => {
  it('refuses occurrences outside [startAt, endAt] and beyond maxRuns', () => {
    const job = aJob({ startAt: now, endAt: now + 60_000, maxRuns: 2 });
    expect(outsideLimits(job, now - 1, 0)).toBe('before_start');
    expect(outsideLimits(job, now, 0)).toBeUndefined();
    expect(outsideLimits(job, now + 60_000, 1)).toBeUndefined();
    expect(outsideLimits(job, now + 60_001, 0)).toBe('after_end');
    expect(outsideLimits(job, now + 1, 2)).toBe('max_runs');
  });
});

describe('judgeOccurrence', () => {
  const facts = (overrides: Partial<OccurrenceFacts> = {}, job: Partial<Job> = {}): OccurrenceFacts => ({
    job: aJob(job),
    skipUntil: null,
    runCount: 0,
    serviceDisabled: false,
    version: 1,
    scheduledFor: now,
    now: now + 10,
    mayWait: true,
    excluded: false,
    ...overrides,
  });
  it('applies the rules in their order: the first that stops an occurrence names the verdict', () => {
    expect(judgeOccurrence(facts())).toEqual({ kind: 'deliver', catchUp: false });
    expect(judgeOccurrence(facts({ serviceDisabled: true }, { state: 'paused' }))).toEqual({ kind: 'disabled' });
    const jittered = facts({ now }, { jitterMs: 60_000 });
    const dueAt = dueAtOf(jittered.job, now);
    expect(dueAt).toBeGreaterThan(now);
    expect(judgeOccurrence(jittered)).toEqual({ kind: 'wait', dueAt });
    expect(judgeOccurrence({ ...jittered, mayWait: false })).toEqual({ kind: 'deliver', catchUp: false });
    expect(judgeOccurrence(facts({ version: 2 }, { state: 'paused' }))).toEqual({ kind: 'skip', reason: 'paused' });
    expect(judgeOccurrence(facts({ version: 2 }, { state: 'completed' }))).toEqual({
      kind: 'skip',
      reason: 'superseded',
    });
    expect(judgeOccurrence(facts({ runCount: 5 }, { state: 'completed', maxRuns: 1 }))).toEqual({
      kind: 'drop',
      reason: 'completed',
    });
    expect(judgeOccurrence(facts({ runCount: 1, excluded: true }, { maxRuns: 1 }))).toEqual({
      kind: 'drop',
      reason: 'max_runs',
    });
    const late = now + 10 * 60_000;
    expect(judgeOccurrence(facts({ excluded: true, skipUntil: late, now: late }))).toEqual({
      kind: 'skip',
      reason: 'excluded',
    });
    expect(judgeOccurrence(facts({ skipUntil: now + 1, now: late }))).toEqual({ kind: 'skip', reason: 'requested' });
    expect(judgeOccurrence(facts({ skipUntil: now }))).toEqual({ kind: 'deliver', catchUp: false });
  });
  it('asks for a fact that costs a query only when the verdict turns on it', () => {
    const late = now + 10 * 60_000;
    expect(judgeOccurrence(facts({ now: late }))).toEqual({ kind: 'ask', question: 'caughtUp' });
    expect(judgeOccurrence(facts({ now: late, caughtUp: false }))).toEqual({ kind: 'deliver', catchUp: true });
    expect(judgeOccurrence(facts({ now: late, caughtUp: true }))).toEqual({ kind: 'skip', reason: 'missed' });
    // Under `skip` a late occurrence is missed whether the job caught up or not: nothing to ask.
    const skip = { misfire: { policy: 'skip' as const, graceMs: 1_000 } };
    expect(judgeOccurrence(facts({ now: late }, skip))).toEqual({ kind: 'skip', reason: 'missed' });
    expect(judgeOccurrence(facts({}, { overlap: 'skip' }))).toEqual({ kind: 'ask', question: 'runInFlight' });
    expect(judgeOccurrence(facts({ runInFlight: true }, { overlap: 'skip' }))).toEqual({
      kind: 'skip',
      reason: 'overlap',
    });
    expect(judgeOccurrence(facts({ runInFlight: false }, { overlap: 'skip' }))).toEqual({
      kind: 'deliver',
      catchUp: false,
    });
    // Misfire before overlap: a missed occurrence never asks about runs in flight.
    expect(judgeOccurrence(facts({ now: late, caughtUp: true }, { overlap: 'skip' }))).toEqual({
      kind: 'skip',
      reason: 'missed',
    });
  });
});

describe('PATCH', () => {
  it('merges objects, removes with null and replaces schedule and body whole', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: 5 })).toEqual({
      a: 1,
      b: { d: 3, e: 4 },
      f: 5,
    });
    const job = aJob(
      {},
      {
        schedule: { cron: '0 9 * * *', timezone: 'Europe/Berlin' },
        target: { url: 'https://example.com/a', headers: { 'x-a': '1', 'x-b': '2' }, body: { keep: 1, drop: 2 } },
        labels: { team: 'a', env: 'prod' },
        description: 'd',
      },
    );
    const merged = applyJobPatch(job, {
      schedule: { every: '5m' },
      target: { headers: { 'x-a': null, 'x-c': '3' }, body: { only: true } },
      labels: { env: null },
      description: null,
      retry: { maxAttempts: 5 },
    });
    expect(merged.schedule).toEqual({ every: '5m' });
    expect(merged.target).toEqual({
      url: 'https://example.com/a',
      method: 'POST',
      headers: { 'x-b': '2', 'x-c': '3' },
      body: { only: true },
      timeoutMs: 10_000,
    });
    expect(merged.labels).toEqual({ team: 'a' });
    expect(merged.description).toBeUndefined();
    expect(merged.retry).toEqual({
      maxAttempts: 5,
      backoff: { type: 'exponential', delayMs: 1_000, maxDelayMs: 3_600_000 },
    });
    expect(applyJobPatch(job, { target: { body: null } }).target.body).toBeUndefined();
  });
  it('keeps a past one-shot valid when the schedule is not changed, and checks a new one', () => {
    const past = Date.parse('2026-05-01T00:00:00Z');
    const spec = buildJobSpec(
      { name: 'o', schedule: { at: '2026-05-02T00:00:00Z' }, target: { url: 'https://e.com' } },
      { now: past },
    );
    expect(() => buildJobSpec(applyJobPatch(spec, { description: 'x' }), { now, previous: spec })).not.toThrow();
    expect(() =>
      buildJobSpec(applyJobPatch(spec, { schedule: { at: '2026-05-03T00:00:00Z' } }), { now, previous: spec }),
    ).toThrow(TickworkError);
  });
  it('reads If-Match weak or strong, lists and *', () => {
    expect(ifMatchAllows(undefined, 3)).toBe(true);
    expect(ifMatchAllows('W/"3"', 3)).toBe(true);
    expect(ifMatchAllows('"3"', 3)).toBe(true);
    expect(ifMatchAllows('"1", W/"3"', 3)).toBe(true);
    expect(ifMatchAllows('*', 3)).toBe(true);
    expect(ifMatchAllows('W/"2"', 3)).toBe(false);
    expect(ifMatchAllows('3', 3)).toBe(false);
  });
});

describe('Idempotency-Key', () => {
  it('reads the key bare or as an sf-string, and refuses junk', () => {
    expect(parseIdempotencyKey('"abc-1"')).toBe('abc-1');
    expect(parseIdempotencyKey('abc-1')).toBe('abc-1');
    expect(parseIdempotencyKey(undefined)).toBeUndefined();
    expect(() => parseIdempotencyKey('')).toThrow(TickworkError);
    expect(() => parseIdempotencyKey('a b')).toThrow(TickworkError);
  });
  it('fingerprints the same request the same way, whatever the key order', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 1, c: 2 }] })).toBe('{"a":[{"c":2,"d":1}],"b":1}');
    expect(requestFingerprint('POST', '/v1/jobs', { a: 1, b: 2 })).toBe(
      requestFingerprint('post', '/v1/jobs', { b: 2, a: 1 }),
    );
    expect(requestFingerprint('POST', '/v1/jobs', { a: 1 })).not.toBe(requestFingerprint('POST', '/v1/jobs', { a: 2 }));
  });
});
