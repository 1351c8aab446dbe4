import type { ColumnType, Generated, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export interface ServicesTable {
  id: string;
  name: string;
  max_jobs: Generated<number>;
  min_interval_ms: Generated<number>;
  signing_secret: string;
  previous_signing_secret: string | null;
  previous_secret_expires_at: Timestamp | null;
  created_at: GeneratedTimestamp;
  disabled_at: Timestamp | null;
  /** Where the service's alerts are sent (migration 0010); null: not sent. */
  alert_webhook_url: string | null;
}

export interface ApiKeysTable {
  id: string;
  service_id: string;
  prefix: string;
  hash: string;
  scopes: string[];
  created_at: GeneratedTimestamp;
  last_used_at: Timestamp | null;
  expires_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export interface JobsTable {
  id: string;
  service_id: string;
  name: string;
  description: string | null;
  labels: Json<Record<string, string>>;
  schedule: Json<unknown>;
  target: Json<unknown>;
  /** The body as the client sent it (JSON text); null without a body, or in a row older than migration 0004. */
  target_body: string | null;
  /** The headers, sealed (core's `sealHeaders`); null without headers, or in a row not yet sealed (headers in `target`). */
  target_headers: string | null;
  start_at: Timestamp | null;
  end_at: Timestamp | null;
  max_runs: number | null;
  jitter_ms: number;
  overlap: string;
  misfire: Json<unknown>;
  retry: Json<unknown>;
  state: string;
  version: number;
  next_run_at: Timestamp | null;
  last_run_at: Timestamp | null;
  last_run_status: string | null;
  run_count: Generated<number>;
  /** The exclusion calendars the job honours (migration 0030), in the order the client gave. */
  calendar_ids: ColumnType<string[], string[] | undefined, string[]>;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** A pause that ends by itself at this instant (migration 0020); null otherwise. */
  paused_until: Timestamp | null;
  /** Occurrences scheduled before this instant are skipped, `requested` (migration 0020). */
  skip_until: Timestamp | null;
  /** Alert when an occurrence has not succeeded this long after its instant (migration 0010). */
  alert_after_ms: number | null;
  /** The job's open alert, kept by the alert watch; null when none is open. */
  open_alert: Json<OpenAlert> | null;
}

export interface CalendarsTable {
  id: string;
  service_id: string;
  name: string;
  timezone: string;
  dates: ColumnType<string[], string[], string[]>;
  ranges: Json<Array<{ from: string; to: string }>>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** A job's open alert as its response shows it. */
export interface OpenAlert {
  id: string;
  reason: string;
  openedAt: string;
}

export interface RunsTable {
  id: string;
  job_id: string;
  service_id: string;
  job_version: number;
  scheduled_for: Timestamp;
  trigger: string;
  status: string;
  skip_reason: string | null;
  attempts: Generated<number>;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
  duration_ms: number | null;
  http_status: number | null;
  response_excerpt: string | null;
  error: string | null;
  worker_id: string | null;
  replay_of: string | null;
  created_at: GeneratedTimestamp;
}

export interface IdempotencyKeysTable {
  service_id: string;
  key: string;
  fingerprint: string;
  status_code: number | null;
  response: Json<unknown> | null;
  created_at: GeneratedTimestamp;
  expires_at: Timestamp;
}

export interface AlertsTable {
  id: string;
  service_id: string;
  job_id: string;
  scheduled_for: Timestamp;
  reason: string;
  opened_at: GeneratedTimestamp;
  resolved_at: Timestamp | null;
}

export interface AlertWatchTable {
  job_id: string;
  checked_until: Timestamp;
  next_check_at: GeneratedTimestamp;
}

export interface AlertNotificationsTable {
  id: string;
  alert_id: string;
  service_id: string;
  event: string;
  attempts: Generated<number>;
  next_attempt_at: GeneratedTimestamp;
  delivered_at: Timestamp | null;
  failed_at: Timestamp | null;
  last_error: string | null;
  created_at: GeneratedTimestamp;
}

/** One change of a job, with the job's row as it stood after it (migration 0020). */
export interface JobVersionsTable {
  id: string;
  job_id: string;
  service_id: string;
  version: number;
  change: string;
  actor_kind: string;
  actor_id: string;
  changed_at: Timestamp;
  definition: Json<unknown>;
}

export interface Database {
  services: ServicesTable;
  api_keys: ApiKeysTable;
  jobs: JobsTable;
  runs: RunsTable;
  idempotency_keys: IdempotencyKeysTable;
  calendars: CalendarsTable;
  alerts: AlertsTable;
  alert_watch: AlertWatchTable;
  alert_notifications: AlertNotificationsTable;
  job_versions: JobVersionsTable;
}

export type ServiceRow = Selectable<ServicesTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type JobRow = Selectable<JobsTable>;
export type RunRow = Selectable<RunsTable>;
export type CalendarRow = Selectable<CalendarsTable>;
export type AlertRow = Selectable<AlertsTable>;
export type JobVersionRow = Selectable<JobVersionsTable>;
