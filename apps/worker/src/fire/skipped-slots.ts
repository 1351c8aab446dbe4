/**
 * BullMQ skips a scheduler's slots when it falls behind (workers down, a worker killed as it took
 * an occurrence, an overloaded box): it makes the next occurrence only when a worker takes the
 * current one, aligned to the clock. No worker ever sees those slots; record them as missed, so
 * every occurrence keeps its one row in the ledger. A slot whose BullMQ job still exists (awaiting
 * stalled recovery, a reconciler catch-up) is not skipped: it will be decided itself.
 *
 * Occurrences of one version are not always decided in their order: a catch-up (a resume at the
 * end of a pause, the reconciler's) waits in the queue next to the version's scheduler, and a
 * worker may decide the scheduler's later occurrence first. So the slots between two recorded
 * runs of a version are checked by whichever of the two is decided second: every occurrence looks
 * back to the version's previous run; a catch-up, and an occurrence with no previous run of its
 * version, also look forward to the next one.
 */
import { slotsBetween, uuidv7 } from '@tickwork/core';
import { firstScheduledAfter, lastScheduledBefore, recordMissedSlots, scheduledNeighboursGrouped } from '@tickwork/db';
import { catchUpJobIdOf, schedulerIdOf, schedulerOccurrenceIdOf } from '@tickwork/queue';
import type { FireContext, SlotCheck } from './types.ts';

/**
 * Records the slots skipped around a decided occurrence. Run after the occurrence's run has
 * committed, not with it: a worker that dies in between leaves its BullMQ job to be taken over,
 * and the takeover finds the run and checks the slots again (its decision carries the check too).
 * Run after the commit, its reads also see every run committed before it: of two occurrences
 * decided at once, the one that commits second sees the other. Every row is inserted once (the
 * occurrence's unique key), so checking twice records nothing twice.
 */
export async function recordSkippedSlots(ctx: FireContext, check: SlotCheck): Promise<void> {
  const { job, version, scheduledFor, exclusion } = check;
  const queue = ctx.queue;
  if (!queue) return;
  const { previous, next } = await neighboursOf(ctx, check);
  const gaps: Array<[number, number]> = [];
  if (previous) gaps.push([previous.getTime(), scheduledFor]);
  if (next) gaps.push([scheduledFor, next.getTime()]);
  const gap: number[] = [];
  for (const [from, to] of gaps) {
    const slots = slotsBetween(job, from, to);
    if (slots === undefined) {
      ctx.logger.warn(
        { jobId: job.id, from: new Date(from), to: new Date(to) },
        'skipped slots not recorded: too many, or not computable',
      );
      continue;
    }
    gap.push(...slots);
  }
  if (gap.length === 0) return;
  const queues = ctx.queues ? await ctx.queues() : [queue];
  const pending = await Promise.all(
    gap.map(async (slot) => {
      const ids = [
        schedulerOccurrenceIdOf(schedulerIdOf(job.id, version), slot),
        catchUpJobIdOf(job.id, version, slot),
      ];
      const found = await Promise.all(queues.flatMap((each) => ids.map((id) => each.getJob(id))));
      return found.some((j) => j !== undefined && j !== null);
    }),
  );
  const skipped = gap.filter((_, i) => !pending[i]);
  const base = { jobId: job.id, serviceId: job.serviceId, jobVersion: version };
  const isExcluded = (slot: number) => exclusion !== undefined && !exclusion.empty && exclusion.excludes(slot);
  const excluded = skipped.filter(isExcluded);
  const missed = skipped.filter((slot) => !isExcluded(slot));
  const recorded =
    (await recordMissedSlots(ctx.db, base, missed, uuidv7)) +
    (await recordMissedSlots(ctx.db, base, excluded, uuidv7, 'excluded'));
  if (recorded > 0) ctx.logger.info({ jobId: job.id, recorded }, 'slots the timer skipped recorded as missed');
}

/**
 * The recorded runs of the occurrence's version just before and just after it, as far as they are
 * needed. The common case: the deciding statement read a previous run, and the occurrence is the
 * scheduler's: one gap, no query. `null` (none when that statement began) is read again here: a
 * run committed while the statement waited for the job's lock is not in its snapshot. Both are
 * read at once when the forward look is likely needed (one statement, grouped with the other
 * occurrences' reads in flight), so it costs no round trip more.
 */
async function neighboursOf(
  ctx: FireContext,
  check: SlotCheck,
): Promise<{ previous: Date | undefined; next: Date | undefined }> {
  const at = new Date(check.scheduledFor);
  const before = () => lastScheduledBefore(ctx.db, check.job.id, check.version, at);
  const after = () => firstScheduledAfter(ctx.db, check.job.id, check.version, at);
  if (check.previous instanceof Date) {
    return { previous: check.previous, next: check.catchUp ? await after() : undefined };
  }
  if (check.catchUp || check.previous === null) {
    // One statement for both, shared with the other occurrences' reads in flight.
    return scheduledNeighboursGrouped(ctx.db, {
      jobId: check.job.id,
      version: check.version,
      scheduledFor: check.scheduledFor,
    });
  }
  const previous = await before();
  return { previous, next: previous ? undefined : await after() };
}
