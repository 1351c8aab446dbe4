/**
 * BullMQ skips a scheduler's slots when it falls behind (workers down, a worker killed as it took
 * an occurrence, an overloaded box): it makes the next occurrence only when a worker takes the
 * current one, aligned to the clock. No worker ever sees those slots; record them as missed, so
 * every occurrence keeps its one row in the ledger. A slot whose BullMQ job still exists (awaiting
 * stalled recovery, a reconciler catch-up) is not skipped: it will be decided itself.
 */
import { slotsBetween, uuidv7 } from '@tickwork/core';
import { lastScheduledBefore, recordMissedSlots } from '@tickwork/db';
import { catchUpJobIdOf, schedulerIdOf, schedulerOccurrenceIdOf } from '@tickwork/queue';
import type { FireContext, SlotCheck } from './types.ts';

/**
 * Records the slots skipped before a decided occurrence. Run after the occurrence's run has
 * committed, not with it: a worker that dies in between leaves its BullMQ job to be taken over,
 * and the takeover finds the run and checks the slots again (its decision carries the check too).
 * Every row is inserted once (the occurrence's unique key), so checking twice records nothing twice.
 */
export async function recordSkippedSlots(ctx: FireContext, check: SlotCheck): Promise<void> {
  const { job, version, scheduledFor, exclusion } = check;
  const queue = ctx.queue;
  if (!queue) return;
  const previous =
    check.previous !== undefined
      ? check.previous
      : await lastScheduledBefore(ctx.db, job.id, version, new Date(scheduledFor));
  if (!previous) return;
  const gap = slotsBetween(job, previous.getTime(), scheduledFor);
  if (gap === undefined) {
    ctx.logger.warn({ jobId: job.id, since: previous }, 'skipped slots not recorded: too many, or not computable');
    return;
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
  const excluded = exclusion && !exclusion.empty ? skipped.filter((slot) => exclusion.excludes(slot)) : [];
  const missed = excluded.length === 0 ? skipped : skipped.filter((slot) => !excluded.includes(slot));
  const recorded =
    (await recordMissedSlots(ctx.db, base, missed, uuidv7)) +
    (await recordMissedSlots(ctx.db, base, excluded, uuidv7, 'excluded'));
  if (recorded > 0) ctx.logger.info({ jobId: job.id, recorded }, 'slots the timer skipped recorded as missed');
}
