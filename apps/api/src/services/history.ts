/**
 * What the version history, pause-until and skip compute without I/O: the instants a request
 * names, checked, and a history entry as the API shows it (the job's row as it stood, as a Job).
 */
import {
  MAX_SKIP_COUNT,
  TickworkError,
  nextOccurrences,
  normalizedScheduleOf,
  validationError,
  windowOf,
  type JobVersionDto,
  type SecretKeys,
  type SkipJobBody,
} from '@tickwork/core';
import { WITHOUT_HEADERS, jobFromRow, type JobRow, type JobVersionRow } from '@tickwork/db';
import { jobDto } from '../serializers.ts';

/** An instant a request names: parsed, and refused (400, naming `field`) unless it is after `now`. */
export function untilOf(until: string, now: number, field: string): number {
  const at = Date.parse(until);
  if (!Number.isFinite(at)) throw validationError([{ field, message: 'is not an ISO 8601 instant' }]);
  if (at <= now) throw validationError([{ field, message: 'must be in the future' }]);
  return at;
}

/**
 * The instant before which occurrences are skipped, for a skip request on `row` at `now`:
 * `until` itself, or just after the `count`-th next occurrence (counted from the end of a pause
 * with `until`, the first instant the job fires again); null for `count: 0`.
 */
export function skipUntilOf(row: JobRow, body: SkipJobBody, now: number): Date | null {
  if ((body.count === undefined) === (body.until === undefined)) {
    const message = body.count === undefined ? 'send count or until' : 'send count or until, not both';
    throw validationError([{ field: body.count === undefined ? 'count' : 'until', message }]);
  }
  if (body.until !== undefined) return new Date(untilOf(body.until, now, 'until'));
  const count = body.count ?? 0;
  if (count === 0) return null;
  const job = jobFromRow(row, WITHOUT_HEADERS);
  const from = Math.max(now, row.paused_until?.getTime() ?? 0);
  const times = nextOccurrences(normalizedScheduleOf(job), windowOf(job), from, Math.min(count, MAX_SKIP_COUNT));
  const last = times.at(-1);
  if (last === undefined) throw new TickworkError('conflict', 'The job has no occurrence left to skip.');
  return new Date(last + 1);
}

const TIMESTAMPS = [
  'start_at',
  'end_at',
  'next_run_at',
  'last_run_at',
  'created_at',
  'updated_at',
  'paused_until',
  'skip_until',
] as const;

/**
 * The jobs row an entry holds (`to_jsonb` of it: timestamps as text) as a row again. A column
 * added after the entry was written is missing from it, and read as null.
 */
export function rowOfDefinition(definition: Record<string, unknown>): JobRow {
  const row: Record<string, unknown> = { ...definition };
  for (const column of TIMESTAMPS) {
    const value = row[column];
    row[column] = typeof value === 'string' ? new Date(value) : null;
  }
  return row as unknown as JobRow;
}

/**
 * An entry as the API shows it. Its definition is the row as stored, headers sealed
 * (`target_headers`), so it goes through {@link jobDto} as a job does: opened with `keys`, every
 * sensitive value shown as `"***"`.
 */
export function versionDto(entry: JobVersionRow, keys: SecretKeys): JobVersionDto {
  return {
    id: entry.id,
    version: entry.version,
    changedAt: entry.changed_at.toISOString(),
    change: entry.change as JobVersionDto['change'],
    actor: { kind: entry.actor_kind as JobVersionDto['actor']['kind'], id: entry.actor_id },
    // As it stood when the change was made: a skip then in force shows.
    definition: jobDto(rowOfDefinition(entry.definition as Record<string, unknown>), keys, entry.changed_at.getTime()),
  };
}
