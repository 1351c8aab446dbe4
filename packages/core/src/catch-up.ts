/**
 * Which missed occurrence a job catches up with after its timer was lost (Redis lost its data, a
 * scheduler stopped producing). Only the latest one that came due: never more than one catch-up
 * per job, whatever the length of the gap. Whether it is delivered or recorded as `missed` is the
 * job's misfire policy, applied where every occurrence is fired.
 */
import { nextOccurrence } from './schedule.ts';
import { normalizedScheduleOf, windowOf, type Job } from './job.ts';

/** Search windows for cron schedules, smallest first: a dense pattern is found in a few steps. */
const CRON_WINDOWS_MS = [60_000, 3_600_000, 86_400_000, 32 * 86_400_000, 366 * 86_400_000];
const MAX_STEPS = 1_000;

/**
 * The latest occurrence of `job` in `[fromMs, nowMs]`, or undefined when none came due there.
 * `fromMs` is the first occurrence that has not run (the job's `nextRunAt`).
 */
export function latestMissedOccurrence(job: Job, fromMs: number, nowMs: number): number | undefined {
  if (fromMs > nowMs) return undefined;
  const schedule = normalizedScheduleOf(job);
  const window = windowOf(job);
  const until = window.endAt === undefined ? nowMs : Math.min(nowMs, window.endAt);
  if (fromMs > until) return undefined;
  const first = nextOccurrence(schedule, window, fromMs - 1);
  if (first === undefined || first > until) return undefined;
  if (schedule.kind === 'every') return first + Math.floor((until - first) / schedule.everyMs) * schedule.everyMs;
  if (schedule.kind === 'at') return first;
  for (const span of CRON_WINDOWS_MS) {
    let cursor = Math.max(fromMs, until - span) - 1;
    let latest: number | undefined;
    for (let step = 0; step < MAX_STEPS; step++) {
      const next = nextOccurrence(schedule, window, cursor);
      if (next === undefined || next > until) break;
      latest = next;
      cursor = next;
    }
    if (latest !== undefined) return latest;
  }
  return first;
}
