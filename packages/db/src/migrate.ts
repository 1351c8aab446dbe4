import type { Kysely } from 'kysely';
import { Migrator, type Migration, type MigrationProvider } from 'kysely/migration';
import * as m0001 from './migrations/0001_init.ts';
import * as m0002 from './migrations/0002_scheduling.ts';
import * as m0003 from './migrations/0003_job_count.ts';
import * as m0004 from './migrations/0004_target_body_text.ts';
import * as m0010 from './migrations/0010_alerts.ts';
import * as m0020 from './migrations/0020_job_history.ts';
import * as m0030 from './migrations/0030_calendars.ts';
import * as m0040 from './migrations/0040_sealed_target_headers.ts';
import * as m0050 from './migrations/0050_jobs_updated_at.ts';
import * as m0060 from './migrations/0060_job_count_shards.ts';
import * as m0061 from './migrations/0061_cache_notify.ts';
import * as m0062 from './migrations/0062_run_neighbours.ts';

/** Every migration, in order. Forward-only: a change is a new file, never an edit. */
const MIGRATIONS: Record<string, Migration> = {
  '0001_init': m0001,
  '0002_scheduling': m0002,
  '0003_job_count': m0003,
  '0004_target_body_text': m0004,
  '0010_alerts': m0010,
  '0020_job_history': m0020,
  '0030_calendars': m0030,
  '0040_sealed_target_headers': m0040,
  '0050_jobs_updated_at': m0050,
  '0060_job_count_shards': m0060,
  '0061_cache_notify': m0061,
  '0062_run_neighbours': m0062,
};

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/**
 * Brings the schema up to date. Each migration runs in its own transaction; kysely takes a
 * Postgres advisory lock for the run, so two instances starting at once apply each step once.
 */
// biome-ignore lint/suspicious/noExplicitAny: any Kysely<DB> may be migrated, as kysely's own Migrator takes it.
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  // Migrations are numbered by area (0010 alerts, 0020 history, 0030 calendars, …), so a database
  // that applied a higher number first may meet a lower one later: still applied in name order,
  // but not refused for being out of order.
  const migrator = new Migrator({ db, provider, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(
      `migration ${failed?.migrationName ?? ''} failed: ${(error as Error)?.message ?? 'unknown error'}`,
      {
        cause: error,
      },
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
