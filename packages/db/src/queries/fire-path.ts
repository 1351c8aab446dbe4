/**
 * The worker's per-occurrence writes in as few round trips as their semantics allow. On a small
 * box the fire path is bound by round trips (each a syscall pair on both sides and a parse/plan in
 * Postgres), not by work: `recordOccurrence` + `startAttempt` were two statements and
 * `recordOutcome` a four-round-trip transaction (BEGIN, UPDATE, UPDATE, COMMIT); here they are one
 * statement each, with the same effects (bench/RESULTS.md has the measured difference).
 */
import { sql, type Kysely } from 'kysely';
import type { Database, RunRow } from '../types.ts';
import type { NewRun, RunOutcome } from './runs.ts';
import { startAttempt } from './runs.ts';

export type StartedOccurrence = { run: RunRow; created: boolean; ended: false } | { run: { id: string }; created: false; ended: true };

/**
 * Records the occurrence and starts its first attempt in one statement: a new row is born
 * `running` with attempt 1. A redelivery (retry, or another worker after a crash, or a run the api
 * recorded for `manual`/`replay`) conflicts on (job, scheduled_for, trigger) and starts the next
 * attempt of that row instead, as `startAttempt` does; a row that already ended is reported so.
 */
export async function startOccurrence(
  db: Kysely<Database>,
  run: Omit<NewRun, 'status' | 'skipReason'>,
  workerId: string,
): Promise<StartedOccurrence> {
  const inserted = await db
    .with('ins', (qb) =>
      qb
        .insertInto('runs')
        .values({
          id: run.id,
          job_id: run.jobId,
          service_id: run.serviceId,
          job_version: run.jobVersion,
          scheduled_for: run.scheduledFor,
          trigger: run.trigger,
          status: 'running',
          attempts: 1,
          started_at: sql`now()`,
          worker_id: workerId,
          replay_of: run.replayOf ?? null,
        })
        .onConflict((oc) => oc.columns(['job_id', 'scheduled_for', 'trigger']).doNothing())
        .returningAll(),
    )
    .with('bump', (qb) =>
      qb
        .updateTable('jobs')
        .set((eb) => ({ run_count: eb('run_count', '+', 1) }))
        .where('id', '=', run.jobId)
        .where(sql<boolean>`exists (select 1 from ins)`),
    )
    .selectFrom('ins')
    .selectAll()
    .executeTakeFirst();
  if (inserted) return { run: inserted, created: true, ended: false };
  const existing = await db
    .selectFrom('runs')
    .select('id')
    .where('job_id', '=', run.jobId)
    .where('scheduled_for', '=', run.scheduledFor)
    .where('trigger', '=', run.trigger)
    .executeTakeFirst();
  if (!existing) throw new Error(`run of job ${run.jobId} at ${run.scheduledFor.toISOString()} vanished`);
  const started = await startAttempt(db, existing.id, workerId);
  return started ? { run: started, created: false, ended: false } : { run: existing, created: false, ended: true };
}

/**
 * `recordOutcome` as one statement: the run's outcome and the job's last-run fields change
 * together (a single statement is atomic), without a transaction's extra round trips.
 */
export async function finishAttempt(
  db: Kysely<Database>,
  run: { id: string; jobId: string },
  outcome: RunOutcome,
  job?: { nextRunAt: Date | null; complete: boolean },
): Promise<void> {
  const final = outcome.status !== 'retrying';
  await db
    .with('run', (qb) =>
      qb
        .updateTable('runs')
        .set({
          status: outcome.status,
          http_status: outcome.httpStatus,
          duration_ms: outcome.durationMs,
          response_excerpt: outcome.responseExcerpt,
          error: outcome.error,
          finished_at: final ? sql`now()` : null,
        })
        .where('id', '=', run.id)
        .returning('id'),
    )
    .updateTable('jobs')
    .set({
      last_run_at: sql`now()`,
      last_run_status: outcome.status,
      ...(job ? { next_run_at: job.nextRunAt } : {}),
      ...(job?.complete ? { state: 'completed', next_run_at: null } : {}),
    })
    .where('id', '=', run.jobId)
    .execute();
}
