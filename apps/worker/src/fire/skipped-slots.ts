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
 * version, also look forward to the next one. "Second" is the order of the job's lock: every
 * scheduled run is recorded under it, and the decision reads the occurrence's neighbours while
 * holding it (`SlotCheck.neighbours`), so the second sees the first's run.
 */
import { slotsBetween, uuidv7 } from '@tickwork/core';
import { recordMissedSlots } from '@tickwork/db';
import { catchUpJobIdOf, schedulerIdOf, schedulerOccurrenceIdOf } from '@tickwork/queue';
import type { FireContext, SlotCheck } from './types.ts';

/**
 * Records the slots skipped around a decided occurrence. Run after the occurrence's run has
 * committed, not with it: a worker that dies in between leaves its BullMQ job to be taken over,
 * and the takeover finds the run and checks the slots again (its decision carries the check too).
 * The neighbours it checks between were read under the job's lock by the decision (no read
 * here): of two occurrences decided at once, the one that took the lock second saw the other.
 * Every row is inserted once (the occurrence's unique key), so checking twice records nothing
 * twice.
 */
export async function recordSkippedSlots(ctx: FireContext, check: SlotCheck): Promise<void> {
  const { job, version, scheduledFor, exclusion } = check;
  const queue = ctx.queue;
  if (!queue) return;
  const { previous, next } = check.neighbours;
  const gaps: Array<[number, number]> = [];
  if (previous) gaps.push([previous.getTime(), scheduledFor]);
  // Forward only where a later occurrence may have been decided first (see the top of the file).
  if (next && (check.catchUp || !previous)) gaps.push([scheduledFor, next.getTime()]);
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
