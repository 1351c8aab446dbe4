import { sql } from 'kysely';
import type { JobRow } from '../types.ts';

/**
 * The job's columns by name, not `jobs.*`: a prepared statement's result type is fixed when it is
 * first parsed, and a `*` that grows with a migration would fail every later execution on that
 * connection ("cached plan must not change result type").
 */
const JOB_FIELDS = [
  'id',
  'service_id',
  'name',
  'description',
  'labels',
  'schedule',
  'target',
  'target_body',
  'target_headers',
  'start_at',
  'end_at',
  'max_runs',
  'jitter_ms',
  'overlap',
  'misfire',
  'retry',
  'state',
  'version',
  'next_run_at',
  'last_run_at',
  'last_run_status',
  'run_count',
  'calendar_ids',
  'created_at',
  'updated_at',
  'alert_after_ms',
  'open_alert',
  'paused_until',
  'skip_until',
] as const satisfies readonly (keyof JobRow)[];
// Every field of JobRow is listed (a column added to the table and the type but not here fails to compile).
true satisfies [Exclude<keyof JobRow, (typeof JOB_FIELDS)[number]>] extends [never] ? true : false;
export const JOB_COLUMNS = sql.raw(JOB_FIELDS.map((f) => `jobs.${f}`).join(', '));
export const JOB_COLUMNS_OF_J = sql.raw(JOB_FIELDS.map((f) => `j.${f}`).join(', '));
