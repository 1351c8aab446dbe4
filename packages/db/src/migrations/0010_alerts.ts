import { sql, type Kysely } from 'kysely';

/**
 * Alerts when a job didn't run (docs/guarantees.md, "Alerts").
 *
 * - `jobs.alert_after_ms`: the job's promise, "each occurrence succeeds within this many ms of
 *   its instant"; null for a job that asks for no alerts. `jobs.open_alert` is the job's open
 *   alert as its response shows it (`{ id, reason, openedAt }`), written in the transaction that
 *   opens or resolves it, so reading a job costs no extra query.
 * - `alerts`: one row per alert. At most one open alert per job, held by the database (a partial
 *   unique index), so two watchers that judge the same job at once open it once.
 * - `alert_watch`: how far each watched job's occurrences have been judged. The watch claims rows
 *   with `FOR UPDATE SKIP LOCKED`, so every api and worker process may run it: each row is judged
 *   by one of them at a time, with no leader of our own.
 * - `alert_notifications`: the webhook's outbox, one row per (alert, event), so each opening and
 *   each resolving is sent once (retried until delivered, with the same `webhook-id`).
 *
 * Adding nullable columns without defaults does not rewrite `jobs` or `services`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE jobs ADD COLUMN alert_after_ms integer;
    ALTER TABLE jobs ADD COLUMN open_alert jsonb;
    ALTER TABLE services ADD COLUMN alert_webhook_url text;
    CREATE INDEX jobs_alerted ON jobs (id) WHERE alert_after_ms IS NOT NULL;

    CREATE TABLE alerts (
      id uuid PRIMARY KEY,
      service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
      job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
      scheduled_for timestamptz NOT NULL,
      reason text NOT NULL CHECK (reason IN ('failed', 'dead', 'skipped', 'missed', 'not_fired')),
      opened_at timestamptz NOT NULL DEFAULT now(),
      resolved_at timestamptz
    );
    CREATE UNIQUE INDEX alerts_one_open_per_job ON alerts (job_id) WHERE resolved_at IS NULL;
    -- GET /v1/alerts: a service's alerts, newest first, all or open or resolved.
    CREATE INDEX alerts_service ON alerts (service_id, id DESC);
    CREATE INDEX alerts_service_open ON alerts (service_id, id DESC) WHERE resolved_at IS NULL;
    CREATE INDEX alerts_job ON alerts (job_id, id DESC);

    CREATE TABLE alert_watch (
      job_id uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
      checked_until timestamptz NOT NULL,
      next_check_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX alert_watch_due ON alert_watch (next_check_at);

    CREATE TABLE alert_notifications (
      id uuid PRIMARY KEY,
      alert_id uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
      service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
      event text NOT NULL CHECK (event IN ('alert.opened', 'alert.resolved')),
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      delivered_at timestamptz,
      failed_at timestamptz,
      last_error text,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (alert_id, event)
    );
    CREATE INDEX alert_notifications_pending ON alert_notifications (next_attempt_at)
      WHERE delivered_at IS NULL AND failed_at IS NULL;
  `.execute(db);
}
