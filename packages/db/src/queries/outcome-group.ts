/**
 * Group commit of run outcomes: the outcomes of concurrent occurrences written by one statement
 * instead of one each. While a group's statement is in flight the next outcomes queue, and go
 * together when it returns; an outcome arriving alone goes at once (after the current turn of
 * the event loop, so outcomes that arrive together go together). Each caller awaits its own
 * outcome's write. At most one outcome per job goes in a group: a job's outcomes are written in
 * the order they arrive, as separate statements did. A group whose statement fails is written
 * again outcome by outcome, so one bad outcome fails only its own caller.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../types.ts';
import { PREPARE } from '../prepared.ts';
import { recordOutcome, type RunOutcome } from './runs.ts';

/** The most outcomes one statement writes. */
const MAX_OUTCOME_GROUP = 100;

interface Pending {
  run: { id: string; jobId: string };
  outcome: RunOutcome;
  job: { version: number; nextRunAt: Date | null; complete: boolean } | undefined;
  finishedAt: Date | null;
  done: () => void;
  failed: (error: unknown) => void;
}

class OutcomeGroup {
  #pending: Pending[] = [];
  #flushing = false;
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  record(run: Pending['run'], outcome: RunOutcome, job: Pending['job']): Promise<void> {
    const finishedAt = outcome.status !== 'retrying' ? new Date() : null;
    return new Promise<void>((done, failed) => {
      this.#pending.push({ run, outcome, job, finishedAt, done, failed });
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const group: Pending[] = [];
        const rest: Pending[] = [];
        const jobs = new Set<string>();
        for (const p of this.#pending) {
          if (group.length >= MAX_OUTCOME_GROUP || jobs.has(p.run.jobId)) rest.push(p);
          else {
            jobs.add(p.run.jobId);
            group.push(p);
          }
        }
        this.#pending = rest;
        await this.#write(group);
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #write(group: Pending[]): Promise<void> {
    try {
      if (group.length === 1) await this.#one(group[0]!);
      else await writeGroup(this.#db, group);
      for (const p of group) p.done();
    } catch (error) {
      if (group.length === 1) {
        group[0]!.failed(error);
        return;
      }
      await Promise.all(group.map((p) => this.#one(p).then(p.done, p.failed)));
    }
  }

  #one(p: Pending): Promise<void> {
    return recordOutcome(this.#db, p.run, p.outcome, p.job, p.finishedAt);
  }
}

/**
 * The group's runs and jobs in one statement, from arrays (one fixed text whatever the group's
 * size, so it is prepared once). The same changes as {@link recordOutcome}, row by row; sorted by
 * job so concurrent groups lock jobs in the same order.
 */
async function writeGroup(db: Kysely<Database>, group: Pending[]): Promise<void> {
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

const groups = new WeakMap<Kysely<Database>, OutcomeGroup>();

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
  let group = groups.get(db);
  if (group === undefined) {
    group = new OutcomeGroup(db);
    groups.set(db, group);
  }
  return group.record(run, outcome, job);
}
