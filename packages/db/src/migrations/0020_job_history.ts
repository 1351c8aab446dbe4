import { sql, type Kysely } from 'kysely';

/**
 * Version history, skip and pause-until (issue 16 §2, §4).
 *
 * `job_versions`: one row per change of a job (create, patch, pause, resume, trigger, delete,
 * skip), written in the same transaction as the change, with who made it and the job's row as it
 * stood (`definition`, the jobs row as jsonb; the api turns it into the Job resource). No foreign
 * key to `jobs`: a deleted job's history outlives it (the prune removes it RUN_RETENTION_DAYS
 * after the delete). Ids are UUIDv7, so `(service_id, job_id, id DESC)` is newest first.
 *
 * `jobs.paused_until`: a pause that ends by itself; the worker's `resume-due` task resumes the job
 * at that instant (the partial index is what it scans). `jobs.skip_until`: occurrences scheduled
 * before it are recorded `skipped` (`requested`) and not delivered. Both nullable without a
 * default, so adding them does not rewrite the table.
 *
 * `runs.skip_reason` takes `requested` (skip) and `excluded` (calendars). The new check is a
 * superset of the old one, which every existing row passed, so it is added NOT VALID: no scan of
 * `runs` under the table lock.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE job_versions (
      id uuid PRIMARY KEY,
      job_id uuid NOT NULL,
      service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
      version integer NOT NULL,
      change text NOT NULL CHECK (change IN ('create', 'patch', 'pause', 'resume', 'trigger', 'delete', 'skip')),
      actor_kind text NOT NULL CHECK (actor_kind IN ('key', 'admin')),
      actor_id text NOT NULL,
      changed_at timestamptz NOT NULL,
      definition jsonb NOT NULL
    );
    CREATE INDEX job_versions_job ON job_versions (service_id, job_id, id DESC);
    CREATE INDEX job_versions_deleted ON job_versions (changed_at) WHERE change = 'delete';

    ALTER TABLE jobs ADD COLUMN paused_until timestamptz, ADD COLUMN skip_until timestamptz;
    CREATE INDEX jobs_paused_until ON jobs (paused_until) WHERE state = 'paused' AND paused_until IS NOT NULL;

    ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_skip_reason_check;
    ALTER TABLE runs ADD CONSTRAINT runs_skip_reason_check
      CHECK (skip_reason IN ('overlap', 'missed', 'paused', 'superseded', 'requested', 'excluded')) NOT VALID;
  `.execute(db);
}
