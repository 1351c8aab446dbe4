import { sql, type Kysely } from 'kysely';

/**
 * `services.job_count`, the service's jobs, kept by the database itself, so the `maxJobs` quota
 * is one guarded increment instead of `count(*)` over the service's jobs under the service's row
 * lock for the whole create.
 *
 * The triggers are deferred: they run inside COMMIT. The increment takes the service's row lock,
 * and every create of that service queues on it, so it is held for the commit alone — not for
 * the insert, the Redis registration, nor the api's turn-around between a last statement and its
 * COMMIT (measured: that turn-around, with the lock held, kept one service at ~100 creates/s on a
 * busy box). A full service fails the COMMIT with `check_violation` on `jobs_within_max_jobs`,
 * and the whole create rolls back. Every insert and delete is counted, whoever makes it
 * (cascades too), so the count cannot drift from the rows.
 *
 * Backfilled under a share lock on `jobs`: an older api instance still running during a rolling
 * deploy cannot insert or delete a job between the count and the triggers.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE services ADD COLUMN job_count integer NOT NULL DEFAULT 0;
    LOCK TABLE jobs IN SHARE MODE;
    UPDATE services SET job_count = counted.n
      FROM (SELECT service_id, count(*)::integer AS n FROM jobs GROUP BY service_id) AS counted
      WHERE services.id = counted.service_id;

    CREATE FUNCTION jobs_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE services SET job_count = job_count + 1 WHERE id = NEW.service_id AND job_count < max_jobs;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'service % holds its max_jobs already', NEW.service_id
          USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_within_max_jobs';
      END IF;
      RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER jobs_within_max_jobs AFTER INSERT ON jobs
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION jobs_count_insert();

    CREATE FUNCTION jobs_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE services SET job_count = job_count - 1 WHERE id = OLD.service_id;
      RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER jobs_count_delete AFTER DELETE ON jobs
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION jobs_count_delete();
  `.execute(db);
}
