import { sql, type Kysely } from 'kysely';

/**
 * Exclusion calendars (docs/scheduling.md, "Exclusion calendars"): a service's calendars of whole
 * local days, and the ones each job honours (`jobs.calendar_ids`, in the order the client gave).
 *
 * A job may only list calendars of its own service, and a calendar a job lists cannot be deleted
 * (the api answers 409). An array column has no foreign key, so two triggers keep that true
 * whatever races: a job's insert or change of `calendar_ids` locks each calendar it lists
 * (`FOR KEY SHARE`, held to its commit) and fails when one is missing; a calendar's delete locks
 * its row first (a row trigger runs after the row lock), then looks for a job that lists it with a
 * fresh snapshot, so a job committed while the delete waited is seen. Both raise
 * `foreign_key_violation` with a constraint name the api maps.
 *
 * Runs may now be `skipped` for `excluded` (a calendar) and `requested` (an explicit skip), beside
 * the reasons migration 0001 allowed. A service's delete cascades to its calendars and its jobs
 * alike, so the in-use check lets a calendar go when its service is going.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE calendars (
      id uuid PRIMARY KEY,
      service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
      name text NOT NULL,
      timezone text NOT NULL,
      dates text[] NOT NULL DEFAULT '{}',
      ranges jsonb NOT NULL DEFAULT '[]',
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      UNIQUE (service_id, name)
    );
    CREATE INDEX calendars_service_id ON calendars (service_id, id DESC);

    ALTER TABLE jobs ADD COLUMN calendar_ids uuid[] NOT NULL DEFAULT '{}';
    CREATE INDEX jobs_calendar_ids ON jobs USING gin (calendar_ids) WHERE calendar_ids <> '{}';

    CREATE FUNCTION jobs_calendars_exist() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      found integer;
    BEGIN
      SELECT count(*) INTO found FROM (
        SELECT 1 FROM calendars
        WHERE id = ANY (NEW.calendar_ids) AND service_id = NEW.service_id
        FOR KEY SHARE
      ) AS locked;
      IF found <> cardinality(NEW.calendar_ids) THEN
        RAISE EXCEPTION 'job % lists a calendar its service does not have', NEW.id
          USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'jobs_calendar_ids_exist';
      END IF;
      RETURN NEW;
    END $$;
    -- The WHEN is evaluated without entering PL/pgSQL: a job without calendars costs nothing.
    CREATE TRIGGER jobs_calendar_ids_exist BEFORE INSERT OR UPDATE OF calendar_ids ON jobs
      FOR EACH ROW WHEN (cardinality(NEW.calendar_ids) > 0) EXECUTE FUNCTION jobs_calendars_exist();

    CREATE FUNCTION calendars_not_in_use() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM services WHERE id = OLD.service_id) THEN RETURN OLD; END IF;
      IF EXISTS (SELECT 1 FROM jobs WHERE calendar_ids @> ARRAY[OLD.id] AND calendar_ids <> '{}') THEN
        RAISE EXCEPTION 'calendar % is listed by a job', OLD.id
          USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'calendars_in_use';
      END IF;
      RETURN OLD;
    END $$;
    CREATE TRIGGER calendars_in_use BEFORE DELETE ON calendars
      FOR EACH ROW EXECUTE FUNCTION calendars_not_in_use();

    ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_skip_reason_check;
    ALTER TABLE runs ADD CONSTRAINT runs_skip_reason_check
      CHECK (skip_reason IN ('overlap', 'missed', 'paused', 'superseded', 'requested', 'excluded')) NOT VALID;
  `.execute(db);
  // Checked apart from the ALTER that adds it: the scan of runs then blocks no writer.
  await sql`ALTER TABLE runs VALIDATE CONSTRAINT runs_skip_reason_check`.execute(db);
}
