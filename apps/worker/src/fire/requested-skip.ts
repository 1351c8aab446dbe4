/**
 * A skip asked for (POST /v1/jobs/{id}/skip) as the fire path applies it: an occurrence scheduled
 * before the job's `skip_until` is recorded `skipped` (`requested`), and the job's `nextRunAt`
 * moves on past it, as a delivery would have moved it (a one-shot whose one occurrence is skipped
 * is completed). Which occurrence is skipped is `judgeOccurrence`'s (core) to say.
 */
import { sql, type Kysely } from 'kysely';
import { ScheduleComputeError, nextRunOf, type Job } from '@tickwork/core';
import type { Database } from '@tickwork/db';

/** After a requested skip, in the deciding transaction: the job's next occurrence, or its end. */
export async function moveOnAfterSkip(
  trx: Kysely<Database>,
  job: Job,
  runCount: number,
  scheduledFor: number,
): Promise<void> {
  const next = nextAfter(job, scheduledFor, runCount);
  if (next === undefined) return;
  await sql`
    update jobs set next_run_at = ${next === null ? null : new Date(next)}::timestamptz,
      state = case when ${next === null}::boolean then 'completed' else state end
    where id = ${job.id} and version = ${job.version} and state = 'active'`.execute(trx);
}

/** The job's next occurrence after a skipped one (null: none left); undefined when it cannot be computed. */
function nextAfter(job: Job, scheduledFor: number, runCount: number): number | null | undefined {
  try {
    return nextRunOf(job, Math.max(Date.now(), scheduledFor), runCount);
  } catch (error) {
    if (error instanceof ScheduleComputeError) return undefined;
    throw error;
  }
}
