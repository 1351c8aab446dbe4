/**
 * A skip asked for (POST /v1/jobs/{id}/skip) as the fire path applies it: an occurrence scheduled
 * before the job's `skip_until` is recorded `skipped` (`requested`), and the job's `nextRunAt`
 * moves on past it, as a delivery would have moved it (a one-shot whose one occurrence is skipped
 * is completed).
 */
import { sql, type Kysely } from 'kysely';
import { ScheduleComputeError, nextRunOf, type Job } from '@tickwork/core';
import type { Database, JobRow } from '@tickwork/db';

/** Whether the occurrence at `scheduledFor` is one the job was asked to skip. */
export function isSkipRequested(row: Pick<JobRow, 'skip_until'>, scheduledFor: number): boolean {
  return row.skip_until !== null && row.skip_until !== undefined && scheduledFor < row.skip_until.getTime();
}

/** After a requested skip, in the deciding transaction: the job's next occurrence, or its end. */
export async function moveOnAfterSkip(
  trx: Kysely<Database>,
  job: Job,
  runCount: number,
  scheduledFor: number,
): Promise<void> {
  let next: number | null;
  try {
    next = nextRunOf(job, Math.max(Date.now(), scheduledFor), runCount);
  } catch (error) {
    if (error instanceof ScheduleComputeError) return;
    throw error;
  }
  await sql`
    update jobs set next_run_at = ${next === null ? null : new Date(next)}::timestamptz,
      state = case when ${next === null}::boolean then 'completed' else state end
    where id = ${job.id} and version = ${job.version} and state = 'active'`.execute(trx);
}
