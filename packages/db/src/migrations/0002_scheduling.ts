import { sql, type Kysely } from 'kysely';

/**
 * Indexes for the scheduling semantics: the `name` prefix filter of GET /v1/jobs (the unique
 * (service_id, name) index uses the database collation, which a LIKE prefix cannot range-scan),
 * and the overlap check "is a run of this job still in flight?", asked for every occurrence of
 * an `overlap: skip` job.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE INDEX jobs_service_name_prefix ON jobs (service_id, name text_pattern_ops);
    CREATE INDEX runs_job_in_flight ON runs (job_id, created_at) WHERE status IN ('running', 'retrying');
  `.execute(db);
}
