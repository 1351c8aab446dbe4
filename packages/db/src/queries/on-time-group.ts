/**
 * Group commit of the on-time record-and-start (`statement-group.ts`): concurrent
 * {@link lockAndRecordOnTime} calls through one database handle go as one statement, at most one
 * occurrence per job and 100 per statement. Each occurrence gets what its own statement would
 * have answered: the same checks (core's `judgeOccurrence`, restated in SQL once, in
 * {@link lockAndRecordOnTimeMany}), the same run row and id, the same neighbours. A group whose
 * statement fails is run again occurrence by occurrence, so one bad occurrence fails only its
 * caller.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../types.ts';
import { PREPARE } from '../prepared.ts';
import { JOB_COLUMNS, JOB_COLUMNS_OF_J } from './job-columns.ts';
import { onTimeRecordOf, type OnTimeOccurrence, type OnTimeRecord, type OnTimeRow } from './runs.ts';
import { groupOf, type GroupWriter, type StatementGroup } from './statement-group.ts';

/**
 * The common case of a scheduled occurrence in one statement: locks the job (its row only, with
 * its service's signing secrets) and, when every check passes — service enabled, job active at
 * this version, overlap allowed, inside its window and under maxRuns, not skipped on request
 * (`skip_until`), due (jitter) and within its
 * misfire grace at `now`, no exclusion calendars (a job with calendars is decided in TypeScript,
 * which reads them) — records the run as started by `workerId` and bumps `run_count`, and
 * reads the version's scheduled runs just before and after the occurrence (for the skipped-slot
 * check), under the lock: `tickwork_run_neighbours` (migration 0062) takes its own snapshot once
 * the row is locked, so it sees a run of the job committed while the statement waited for the
 * lock, which the statement's own snapshot does not. Its predicate is
 * core's `judgeOccurrence` answering "deliver" without asking anything more, restated in SQL for
 * speed, once, in {@link lockAndRecordOnTimeMany}: this is its group of one;
 * `test/on-time.properties.test.ts` holds the two to the same verdict. `jitterHash` is
 * `jitterHash(key)` of `@tickwork/core`, so the jitter is `jitterHash % (jitter_ms + 1)` as
 * `stableJitter` computes it.
 * When a check fails, or the occurrence already has its run (a retry, a redelivery), nothing is
 * written. The statement runs on its own, in its own implicit transaction: the row lock covers its
 * checks and its insert and ends with it, so a caller that must decide further locks the row again
 * in a transaction of its own. Undefined when the job does not exist.
 */
export async function lockAndRecordOnTime(
  db: Kysely<Database>,
  occurrence: OnTimeOccurrence,
): Promise<OnTimeRecord | undefined> {
  return (await lockAndRecordOnTimeMany(db, [occurrence]))[0];
}

const writer: GroupWriter<OnTimeOccurrence, OnTimeRecord | undefined> = {
  max: 100,
  key: (o) => o.jobId,
  many: lockAndRecordOnTimeMany,
  one: lockAndRecordOnTime,
};

/**
 * {@link lockAndRecordOnTime} for occurrences of distinct jobs, in one statement from arrays (one
 * fixed text whatever the group's size, so it is prepared once). The jobs are locked in id order,
 * as the outcomes' group locks them, so concurrent groups never wait on each other in a cycle. The
 * statement's checks see the job rows as locked, before this statement's own writes (no two of
 * the group share a job, so none could see another's); each occurrence's neighbours are read
 * once its job is locked, and its own run (at its instant) is never one of them. Undefined, in
 * its place, for a job that does not exist.
 */
export async function lockAndRecordOnTimeMany(
  db: Kysely<Database>,
  occurrences: readonly OnTimeOccurrence[],
): Promise<Array<OnTimeRecord | undefined>> {
  const rows = [...occurrences].sort((a, b) => (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
  // Two of one job would both be judged on the row before either's run (and bump it once).
  if (rows.some((o, i) => i > 0 && rows[i - 1]!.jobId === o.jobId)) throw new Error('one occurrence per job');
  const column = <T>(f: (o: OnTimeOccurrence) => T): T[] => rows.map(f);
  const { rows: found } = await sql<OnTimeRow>`${sql.raw(PREPARE)}
    with o as (
      select * from unnest(
        ${column((o) => o.runId)}::uuid[], ${column((o) => o.jobId)}::uuid[], ${column((o) => o.version)}::integer[],
        ${column((o) => o.scheduledFor)}::bigint[], ${column((o) => new Date(o.scheduledFor))}::timestamptz[],
        ${column((o) => o.workerId)}::text[], ${column((o) => o.now)}::bigint[],
        ${column((o) => o.jitterHash)}::bigint[], ${column((o) => o.mayWait)}::boolean[]
      ) as o(run_id, job_id, version, scheduled_ms, at, worker_id, now_ms, jitter_hash, may_wait)
    ), j as (
      select ${JOB_COLUMNS}, s.signing_secret, s.previous_signing_secret, s.previous_secret_expires_at, s.disabled_at,
        o.run_id as o_run_id, o.version as o_version, o.at as o_at, o.worker_id as o_worker_id, o.now_ms as o_now,
        o.may_wait as o_may_wait,
        o.scheduled_ms + case when jobs.jitter_ms > 0 then o.jitter_hash % (jobs.jitter_ms + 1) else 0 end as due_at
      from o join jobs on jobs.id = o.job_id join services s on s.id = jobs.service_id
      order by jobs.id
      for update of jobs
    ), ins as (
      insert into runs (id, job_id, service_id, job_version, scheduled_for, trigger, status, attempts, started_at,
        worker_id)
      select j.o_run_id, j.id, j.service_id, j.version, j.o_at, 'schedule', 'running', 1, now(), j.o_worker_id
      from j
      where j.disabled_at is null and j.state = 'active' and j.version = j.o_version and j.overlap <> 'skip'
        and cardinality(j.calendar_ids) = 0
        and (j.start_at is null or j.start_at <= j.o_at) and (j.end_at is null or j.end_at >= j.o_at)
        and (j.max_runs is null or j.run_count < j.max_runs)
        and (j.skip_until is null or j.skip_until <= j.o_at)
        and (not j.o_may_wait or j.o_now >= j.due_at)
        and j.o_now <= j.due_at + (j.misfire->>'graceMs')::bigint
      on conflict (job_id, scheduled_for, trigger) do nothing
      returning id, job_id
    ), bump as (
      update jobs set run_count = run_count + 1 from ins where jobs.id = ins.job_id
    )
    select ${JOB_COLUMNS_OF_J}, j.signing_secret, j.previous_signing_secret, j.previous_secret_expires_at, j.disabled_at,
      (select ins.id from ins where ins.job_id = j.id) as recorded_run_id,
      n.previous as previous_scheduled_for, n.next as next_scheduled_for
    from j cross join lateral tickwork_run_neighbours(j.id, j.o_version, j.o_at) n
  `.execute(db);
  const byJob = new Map(found.map((row) => [row.id, row]));
  return occurrences.map((o) => {
    const row = byJob.get(o.jobId);
    return row ? onTimeRecordOf(row) : undefined;
  });
}

const groups = new WeakMap<Kysely<Database>, StatementGroup<OnTimeOccurrence, OnTimeRecord | undefined>>();

/**
 * {@link lockAndRecordOnTime}, group-committed with the other on-time occurrences recorded
 * through the same database handle at the same time (see the top of this file).
 */
export function lockAndRecordOnTimeGrouped(
  db: Kysely<Database>,
  occurrence: OnTimeOccurrence,
): Promise<OnTimeRecord | undefined> {
  return groupOf(groups, db, writer).run(occurrence);
}
