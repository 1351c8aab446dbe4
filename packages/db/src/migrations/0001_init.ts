import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE services (
      id uuid PRIMARY KEY,
      name text NOT NULL UNIQUE,
      max_jobs integer NOT NULL DEFAULT 10000,
      min_interval_ms integer NOT NULL DEFAULT 1000,
      signing_secret text NOT NULL,
      previous_signing_secret text,
      previous_secret_expires_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      disabled_at timestamptz
    );

    CREATE TABLE api_keys (
      id uuid PRIMARY KEY,
      service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
      prefix text NOT NULL,
      hash text NOT NULL UNIQUE,
      scopes text[] NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      last_used_at timestamptz,
      expires_at timestamptz,
      revoked_at timestamptz
    );
    CREATE INDEX api_keys_service ON api_keys (service_id, id);

    CREATE TABLE jobs (
      id uuid PRIMARY KEY,
      service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
      name text NOT NULL,
      description text,
      labels jsonb NOT NULL DEFAULT '{}',
      schedule jsonb NOT NULL,
      target jsonb NOT NULL,
      start_at timestamptz,
      end_at timestamptz,
      max_runs integer,
      jitter_ms integer NOT NULL DEFAULT 0,
      overlap text NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip')),
      misfire jsonb NOT NULL,
      retry jsonb NOT NULL,
      state text NOT NULL CHECK (state IN ('active', 'paused', 'completed')),
      version integer NOT NULL DEFAULT 1,
      next_run_at timestamptz,
      last_run_at timestamptz,
      last_run_status text,
      run_count integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      UNIQUE (service_id, name)
    );
    -- GET /v1/jobs: a service's jobs, newest first (ids are UUIDv7, so id order is creation order).
    CREATE INDEX jobs_service_id ON jobs (service_id, id DESC);
    CREATE INDEX jobs_service_state ON jobs (service_id, state, id DESC);
    CREATE INDEX jobs_labels ON jobs USING gin (labels jsonb_path_ops);
    -- The reconciler pages through active jobs.
    CREATE INDEX jobs_active ON jobs (id) WHERE state = 'active';

    CREATE TABLE runs (
      id uuid PRIMARY KEY,
      job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
      service_id uuid NOT NULL,
      job_version integer NOT NULL,
      scheduled_for timestamptz NOT NULL,
      trigger text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'replay')),
      status text NOT NULL CHECK (status IN ('running', 'retrying', 'succeeded', 'failed', 'dead', 'skipped')),
      skip_reason text CHECK (skip_reason IN ('overlap', 'missed', 'paused', 'superseded')),
      attempts integer NOT NULL DEFAULT 0,
      started_at timestamptz,
      finished_at timestamptz,
      duration_ms integer,
      http_status integer,
      response_excerpt text,
      error text,
      worker_id text,
      replay_of uuid,
      created_at timestamptz NOT NULL DEFAULT now(),
      -- One record per occurrence: the database, not luck, refuses a second.
      UNIQUE (job_id, scheduled_for, trigger)
    );
    CREATE INDEX runs_job ON runs (job_id, id DESC);
    CREATE INDEX runs_service_status ON runs (service_id, status, id DESC);
    CREATE INDEX runs_created ON runs (created_at);

    CREATE TABLE idempotency_keys (
      service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
      key text NOT NULL,
      fingerprint text NOT NULL,
      status_code integer,
      response jsonb,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (service_id, key)
    );
    CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
  `.execute(db);
}
