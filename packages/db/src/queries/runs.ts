import { sql, type Kysely } from 'kysely';
import type { RunStatus, RunTrigger, SkipReason } from '@tickwork/core';
import type { Database, RunRow } from '../types.ts';
import { pageOf, type Page } from './cursor.ts';

export interface NewRun {
  id: string;
  jobId: string;
  serviceId: string;
  jobVersion: number;
  scheduledFor: Date;
  trigger: RunTrigger;
  status: RunStatus;
  skipReason?: SkipReason | null;
  replayOf?: string | null;
}

/**
 * Records an occurrence, once. The unique key (job, scheduled_for, trigger) makes a second
 * delivery of the same occurrence find the first one's row (and its id, the `webhook-id`)
 * instead of writing another. A new row counts towards the job's `run_count`.
 */
export async function recordOccurrence(db: Kysely<Database>, run: NewRun): Promise<{ run: RunRow; created: boolean }> {
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
          status: run.status,
          skip_reason: run.skipReason ?? null,
          replay_of: run.replayOf ?? null,
          ...(run.status === 'skipped' ? { finished_at: new Date() } : {}),
        })
        .onConflict((oc) => oc.columns(['job_id', 'scheduled_for', 'trigger']).doNothing())
        .returningAll(),
    )
    .with('bump', (qb) =>
      qb
        .updateTable('jobs')
        .set((eb) => ({ run_count: eb('run_count', '+', 1) }))
        .where('id', '=', run.jobId)
        .where(sql<boolean>`exists (select 1 from ins where ins.status <> 'skipped')`),
    )
    .selectFrom('ins')
    .selectAll()
    .executeTakeFirst();
  if (inserted) return { run: inserted, created: true };
  const existing = await db
    .selectFrom('runs')
    .selectAll()
    .where('job_id', '=', run.jobId)
    .where('scheduled_for', '=', run.scheduledFor)
    .where('trigger', '=', run.trigger)
    .executeTakeFirst();
  if (!existing) throw new Error(`run of job ${run.jobId} at ${run.scheduledFor.toISOString()} vanished`);
  return { run: existing, created: false };
}

/**
 * Starts the next attempt of a run that is still open, and returns it; undefined when the run
 * has already ended (a redelivered occurrence whose outcome was recorded).
 */
export async function startAttempt(db: Kysely<Database>, runId: string, workerId: string): Promise<RunRow | undefined> {
  return db
    .updateTable('runs')
    .set((eb) => ({
      status: 'running',
      attempts: eb('attempts', '+', 1),
      started_at: sql`coalesce(started_at, now())`,
      worker_id: workerId,
    }))
    .where('id', '=', runId)
    .where('status', 'in', ['running', 'retrying'])
    .returningAll()
    .executeTakeFirst();
}

export interface RunOutcome {
  status: RunStatus;
  httpStatus: number | null;
  durationMs: number | null;
  responseExcerpt: string | null;
  error: string | null;
}

/** Writes an attempt's outcome on the run and, when the run ended, on its job. */
export async function recordOutcome(
  db: Kysely<Database>,
  run: { id: string; jobId: string },
  outcome: RunOutcome,
  job?: { nextRunAt: Date | null; complete: boolean },
): Promise<void> {
  const final = outcome.status !== 'retrying';
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('runs')
      .set({
        status: outcome.status,
        http_status: outcome.httpStatus,
        duration_ms: outcome.durationMs,
        response_excerpt: outcome.responseExcerpt,
        error: outcome.error,
        finished_at: final ? new Date() : null,
      })
      .where('id', '=', run.id)
      .execute();
    await trx
      .updateTable('jobs')
      .set({
        last_run_at: sql`now()`,
        last_run_status: outcome.status,
        ...(job ? { next_run_at: job.nextRunAt } : {}),
        ...(job?.complete ? { state: 'completed', next_run_at: null } : {}),
      })
      .where('id', '=', run.jobId)
      .execute();
  });
}

export async function findRun(db: Kysely<Database>, serviceId: string, id: string): Promise<RunRow | undefined> {
  return db.selectFrom('runs').selectAll().where('service_id', '=', serviceId).where('id', '=', id).executeTakeFirst();
}

export async function findRunById(db: Kysely<Database>, id: string): Promise<RunRow | undefined> {
  return db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** A job's runs, newest first (run ids are UUIDv7). */
export async function listRunsOfJob(
  db: Kysely<Database>,
  jobId: string,
  filter: { limit: number; afterId?: string | undefined; status?: RunStatus | undefined },
): Promise<Page<RunRow>> {
  let query = db.selectFrom('runs').selectAll().where('job_id', '=', jobId);
  if (filter.afterId) query = query.where('id', '<', filter.afterId);
  if (filter.status) query = query.where('status', '=', filter.status);
  const rows = await query.orderBy('id', 'desc').limit(filter.limit + 1).execute();
  return pageOf(rows, filter.limit);
}

/** A service's runs in one status (the dead-letter list is `status = dead`), newest first. */
export async function listRunsOfService(
  db: Kysely<Database>,
  serviceId: string,
  filter: { limit: number; afterId?: string | undefined; status?: RunStatus | undefined },
): Promise<Page<RunRow>> {
  let query = db.selectFrom('runs').selectAll().where('service_id', '=', serviceId);
  if (filter.afterId) query = query.where('id', '<', filter.afterId);
  if (filter.status) query = query.where('status', '=', filter.status);
  const rows = await query.orderBy('id', 'desc').limit(filter.limit + 1).execute();
  return pageOf(rows, filter.limit);
}
