import type { JobDto, RunDto } from '@tickwork/core';
import { jobFromRow, type JobRow, type RunRow } from '@tickwork/db';

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

export function jobDto(row: JobRow): JobDto {
  const job = jobFromRow(row);
  // The body's bytes are for the callback; the resource shows the body as JSON.
  const { bodyText: _text, ...target } = job.target;
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
    version: job.version,
    nextRunAt: iso(row.next_run_at),
    lastRunAt: iso(row.last_run_at),
    lastRunStatus: row.last_run_status as JobDto['lastRunStatus'],
    runCount: row.run_count,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
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
