import {
  redactHeaders,
  type CalendarDto,
  type JobDto,
  type MarkedOccurrence,
  type RunDto,
  type SecretKeys,
} from '@tickwork/core';
import { jobFromRow, type CalendarRow, type JobRow, type RunRow } from '@tickwork/db';

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

/**
 * A job as every response shows it: sensitive header values as `"***"` (`keys` open the stored
 * ones); `now` decides whether its skip is still in force.
 */
export function jobDto(row: JobRow, keys: SecretKeys, now = Date.now()): JobDto {
  const job = jobFromRow(row, keys);
  // The body's bytes are for the callback; the resource shows the body as JSON.
  const { bodyText: _text, ...stored } = job.target;
  const target = { ...stored, headers: redactHeaders(stored.headers, stored.secretHeaders) };
  return {
    id: job.id,
    name: job.name,
    description: job.description,
    state: job.state,
    schedule: job.schedule,
    target,
    labels: job.labels,
    startAt: iso(row.start_at),
    endAt: iso(row.end_at),
    maxRuns: job.maxRuns,
    jitterMs: job.jitterMs,
    overlap: job.overlap,
    misfire: job.misfire,
    retry: job.retry,
    calendars: job.calendars ?? [],
    version: job.version,
    nextRunAt: iso(row.next_run_at),
    lastRunAt: iso(row.last_run_at),
    lastRunStatus: row.last_run_status as JobDto['lastRunStatus'],
    runCount: row.run_count,
    pausedUntil: iso(row.paused_until ?? null),
    // A skip whose instant has passed is over: shown as none.
    skipUntil: row.skip_until && row.skip_until.getTime() > now ? row.skip_until.toISOString() : null,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    alertAfterMs: job.alertAfterMs ?? null,
    alert: openAlertOf(row),
  };
}

/** The job's open alert, as the watch keeps it on the row (absent in a row read without it). */
function openAlertOf(row: JobRow): JobDto['alert'] {
  const open = row.open_alert;
  if (!open) return null;
  return { id: open.id, reason: open.reason as NonNullable<JobDto['alert']>['reason'], openedAt: open.openedAt };
}

export function runDto(row: RunRow): RunDto {
  return {
    id: row.id,
    jobId: row.job_id,
    scheduledFor: row.scheduled_for.toISOString(),
    trigger: row.trigger as RunDto['trigger'],
    status: row.status as RunDto['status'],
    skipReason: row.skip_reason as RunDto['skipReason'],
    attempts: row.attempts,
    startedAt: iso(row.started_at),
    finishedAt: iso(row.finished_at),
    durationMs: row.duration_ms,
    httpStatus: row.http_status,
    error: row.error,
    responseExcerpt: row.response_excerpt,
    replayOf: row.replay_of,
    createdAt: row.created_at.toISOString(),
  };
}

/** A weak ETag from the job's version: it changes whenever the definition does. */
export const etagOf = (version: number) => `W/"${version}"`;

export function calendarDto(row: CalendarRow): CalendarDto {
  return {
    id: row.id,
    name: row.name,
    timezone: row.timezone,
    dates: row.dates,
    ranges: row.ranges,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** `nextRuns` (the times that fire) and, when excluded ones were asked for, every occurrence marked. */
export function nextRunsDto(
  occurrences: readonly MarkedOccurrence[],
  includeExcluded: boolean,
): { nextRuns: string[]; occurrences?: Array<{ at: string; excluded: boolean }> } {
  const nextRuns = occurrences.filter((o) => !o.excluded).map((o) => new Date(o.at).toISOString());
  if (!includeExcluded) return { nextRuns };
  return {
    nextRuns,
    occurrences: occurrences.map((o) => ({ at: new Date(o.at).toISOString(), excluded: o.excluded })),
  };
}
