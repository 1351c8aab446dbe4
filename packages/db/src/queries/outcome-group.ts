/**
 * Group commit of run outcomes (`statement-group.ts`): the outcomes of concurrent occurrences
 * written by one statement instead of one each, at most one per job and 100 per statement. A
 * job's outcomes are written in the order they arrive, as separate statements did; a group whose
 * statement fails is written again outcome by outcome, so one bad outcome fails only its caller.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../types.ts';
import { PREPARE } from '../prepared.ts';
import { recordOutcome, type RunOutcome } from './runs.ts';
import { groupOf, type GroupWriter, type StatementGroup } from './statement-group.ts';

interface Pending {
  run: { id: string; jobId: string };
  outcome: RunOutcome;
  job: { version: number; nextRunAt: Date | null; complete: boolean } | undefined;
  finishedAt: Date | null;
}

const writer: GroupWriter<Pending, void> = {
  max: 100,
  key: (p) => p.run.jobId,
  many: async (db, group) => {
    await writeGroup(db, group);
    return group.map(() => undefined);
  },
  one: (db, p) => recordOutcome(db, p.run, p.outcome, p.job, p.finishedAt),
};

/**
 * The group's runs and jobs in one statement, from arrays (one fixed text whatever the group's
 * size, so it is prepared once). The same changes as {@link recordOutcome}, row by row; sorted by
 * job so concurrent groups lock jobs in the same order.
 */
async function writeGroup(db: Kysely<Database>, group: readonly Pending[]): Promise<void> {
  const rows = [...group].sort((a, b) => (a.run.jobId < b.run.jobId ? -1 : a.run.jobId > b.run.jobId ? 1 : 0));
  const column = <T>(f: (p: Pending) => T): T[] => rows.map(f);
  await sql`${sql.raw(PREPARE)}
    with v as (
      select * from unnest(
        ${column((p) => p.run.id)}::uuid[], ${column((p) => p.run.jobId)}::uuid[],
          ${column((p) => p.outcome.status)}::text[],
        ${column((p) => p.outcome.httpStatus)}::integer[], ${column((p) => p.outcome.durationMs)}::integer[],
        ${column((p) => p.outcome.responseExcerpt)}::text[], ${column((p) => p.outcome.error)}::text[],
        ${column((p) => p.finishedAt)}::timestamptz[], ${column((p) => p.job !== undefined)}::boolean[],
        ${column((p) => p.job?.complete === true)}::boolean[], ${column((p) => p.job?.version ?? 0)}::integer[],
        ${column((p) => (p.job?.complete ? null : (p.job?.nextRunAt ?? null)))}::timestamptz[]
      ) as v(run_id, job_id, status, http_status, duration_ms, response_excerpt, error, finished_at, scheduled,
        complete, version, next_run_at)
    ), run_outcome as (
      update runs set status = v.status, http_status = v.http_status, duration_ms = v.duration_ms,
        response_excerpt = v.response_excerpt, error = v.error, finished_at = v.finished_at
      from v where runs.id = v.run_id
    )
    update jobs set last_run_at = now(), last_run_status = v.status,
      state = case when v.complete and jobs.version = v.version and jobs.state = 'active' then 'completed'
        else jobs.state end,
      next_run_at = case when v.scheduled and jobs.version = v.version and jobs.state = 'active'
        then v.next_run_at else jobs.next_run_at end
    from v where jobs.id = v.job_id
  `.execute(db);
}

const groups = new WeakMap<Kysely<Database>, StatementGroup<Pending, void>>();

/**
 * {@link recordOutcome}, group-committed with the other outcomes written through the same
 * database handle at the same time (see the top of this file).
 */
export function recordOutcomeGrouped(
  db: Kysely<Database>,
  run: { id: string; jobId: string },
  outcome: RunOutcome,
  job?: { version: number; nextRunAt: Date | null; complete: boolean },
): Promise<void> {
  const finishedAt = outcome.status !== 'retrying' ? new Date() : null;
  return groupOf(groups, db, writer).run({ run, outcome, job, finishedAt });
}
