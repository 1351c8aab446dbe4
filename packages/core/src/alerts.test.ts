import { describe, expect, it } from 'vitest';
import { STUCK_RUN_MS, judgeOccurrences, verdictOf, type ObservedRun } from './alerts.ts';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const run = (scheduledFor: number, status: string, extra: Partial<ObservedRun> = {}): ObservedRun => ({
  scheduledFor,
  status,
  skipReason: null,
  attempts: 1,
  startedAt: scheduledFor,
  ...extra,
});

describe('verdictOf', () => {
  it('reads each status as the alert it opens, or none', () => {
    expect(verdictOf(run(0, 'succeeded'), NOW)).toEqual({ kind: 'ok' });
    expect(verdictOf(run(0, 'failed'), NOW)).toEqual({ kind: 'bad', reason: 'failed' });
    expect(verdictOf(run(0, 'retrying'), NOW)).toEqual({ kind: 'bad', reason: 'failed' });
    expect(verdictOf(run(0, 'dead'), NOW)).toEqual({ kind: 'bad', reason: 'dead' });
    expect(verdictOf(run(0, 'skipped', { skipReason: 'overlap' }), NOW)).toEqual({ kind: 'bad', reason: 'skipped' });
    expect(verdictOf(run(0, 'skipped', { skipReason: 'missed' }), NOW)).toEqual({ kind: 'bad', reason: 'missed' });
    for (const asked of ['paused', 'superseded', 'excluded', 'requested']) {
      expect(verdictOf(run(0, 'skipped', { skipReason: asked }), NOW)).toEqual({ kind: 'neutral' });
    }
  });

  it('waits for a first attempt in flight unless stuck for an hour; a second attempt means one failed', () => {
    expect(verdictOf(run(NOW - 1_000, 'running'), NOW)).toEqual({ kind: 'pending' });
    expect(verdictOf(run(0, 'running', { attempts: 2 }), NOW)).toEqual({ kind: 'bad', reason: 'failed' });
    expect(verdictOf(run(0, 'running', { startedAt: NOW - STUCK_RUN_MS - 1 }), NOW)).toEqual({
      kind: 'bad',
      reason: 'failed',
    });
  });
});

describe('judgeOccurrences', () => {
  const base = { now: NOW, checkedUntil: 1_000, horizon: 10_000, expected: [], runs: [], open: null };

  it('opens not_fired for an instant the schedule named and no run recorded, once', () => {
    const judged = judgeOccurrences({ ...base, expected: [2_000, 3_000, 4_000] });
    expect(judged).toEqual({
      steps: [{ kind: 'open', scheduledFor: 2_000, reason: 'not_fired' }],
      checkedUntil: 10_000,
    });
  });

  it('opens for the first bad occurrence and resolves on a later success, in time order', () => {
    const judged = judgeOccurrences({
      ...base,
      expected: [2_000, 3_000, 4_000, 5_000],
      runs: [run(5_000, 'dead'), run(3_000, 'succeeded'), run(2_000, 'succeeded'), run(4_000, 'failed')],
    });
    expect(judged.steps).toEqual([{ kind: 'open', scheduledFor: 4_000, reason: 'failed' }]);
    const healed = judgeOccurrences({
      ...base,
      runs: [run(2_000, 'dead'), run(3_000, 'succeeded'), run(4_000, 'skipped', { skipReason: 'missed' })],
    });
    expect(healed.steps).toEqual([
      { kind: 'open', scheduledFor: 2_000, reason: 'dead' },
      { kind: 'resolve', scheduledFor: 3_000 },
      { kind: 'open', scheduledFor: 4_000, reason: 'missed' },
    ]);
  });

  it('opens nothing while an alert is open, and resolves it only by a success after its occurrence', () => {
    const judged = judgeOccurrences({ ...base, open: { scheduledFor: 5_000 }, runs: [run(3_000, 'succeeded')] });
    expect(judged.steps).toEqual([]);
    const later = judgeOccurrences({ ...base, open: { scheduledFor: 2_000 }, runs: [run(6_000, 'succeeded')] });
    expect(later.steps).toEqual([{ kind: 'resolve', scheduledFor: 6_000 }]);
  });

  it('stops before a first attempt in flight, and judges nothing outside (checkedUntil, horizon]', () => {
    const judged = judgeOccurrences({
      ...base,
      expected: [500, 1_000, 2_000, 3_000, 11_000],
      runs: [run(2_000, 'succeeded'), run(3_000, 'running', { startedAt: NOW - 10 }), run(11_000, 'dead')],
    });
    expect(judged).toEqual({ steps: [], checkedUntil: 2_999 });
  });
});
