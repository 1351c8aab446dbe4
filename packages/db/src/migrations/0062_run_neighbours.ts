import { sql, type Kysely } from 'kysely';

/**
 * `tickwork_run_neighbours(job, version, at)`: the instants of the version's scheduled runs just
 * before and just after `at` (null where there is none). The fire path's skipped-slot check needs
 * them for every occurrence it records, and reads them in the statement that locks the job and
 * records the run (`lockAndRecordOnTimeMany`), not in a statement of its own after the commit.
 *
 * VOLATILE and in plpgsql on purpose: each of its queries takes a fresh snapshot when it runs, so,
 * called for a row the statement has locked (`FOR UPDATE`), it sees every run committed before
 * the lock was granted — among them the run of an occurrence of the same job that held the lock
 * while this statement waited — which the calling statement's own snapshot, taken before the
 * wait, does not. Whichever of two occurrences of one job takes the lock second sees the other.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE FUNCTION tickwork_run_neighbours(p_job uuid, p_version integer, p_at timestamptz,
      OUT previous timestamptz, OUT next timestamptz)
    LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      SELECT r.scheduled_for INTO previous FROM runs r
        WHERE r.job_id = p_job AND r.trigger = 'schedule' AND r.job_version = p_version AND r.scheduled_for < p_at
        ORDER BY r.scheduled_for DESC LIMIT 1;
      SELECT r.scheduled_for INTO next FROM runs r
        WHERE r.job_id = p_job AND r.trigger = 'schedule' AND r.job_version = p_version AND r.scheduled_for > p_at
        ORDER BY r.scheduled_for ASC LIMIT 1;
    END $$;
  `.execute(db);
}
