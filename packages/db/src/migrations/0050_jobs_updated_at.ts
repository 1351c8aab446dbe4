import { sql, type Kysely } from 'kysely';

/**
 * `jobs_updated_at`: the reconciler's steady pass reads the jobs that changed since its last pass
 * (keyset on `(updated_at, id)`), so its cost follows what changed, not how many jobs there are.
 *
 * Only the api writes `updated_at` (create, update, pause, resume); the fire path's updates of a
 * job (`run_count`, `next_run_at`, `last_run_*`) never touch an indexed column, so they stay HOT
 * updates. That is also why `next_run_at` has no index: the overdue query scans the active jobs
 * instead (bench/RESULTS.md, reconciler).
 *
 * A plain CREATE INDEX (a migration runs in a transaction): it holds off writes to `jobs` while it
 * builds, well under a second at 100,000 jobs.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX jobs_updated_at ON jobs (updated_at, id)`.execute(db);
}
