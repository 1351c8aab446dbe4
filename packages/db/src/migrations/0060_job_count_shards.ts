import { sql, type Kysely } from 'kysely';

/**
 * The `maxJobs` quota without one hot row per service. Migration 0003 kept `services.job_count`
 * with deferred triggers: each create's COMMIT updated the service's row, so the creates of one
 * service queued on that row lock, one WAL flush after another (`Lock:transactionid` was the top
 * wait of `POST /v1/jobs`).
 *
 * Now a service's count is split over `JOB_COUNT_SHARDS` rows of `service_job_shards`, each with
 * its own count `n` and its own allowance `cap`, and the caps of a service add up to at most its
 * `max_jobs`. A create (a statement-level trigger over the statement's rows) increments the
 * first shard, from that of its Postgres connection (`pg_backend_pid()` modulo the shards) on,
 * that has `n < cap` and that no other transaction holds (`SKIP LOCKED`): no other row is
 * touched, and a create never waits for another while the service is far from its quota. Since no
 * shard ever passes its cap, the jobs never pass `max_jobs`: the quota stays exact.
 *
 * When that shard has no allowance left (the first create of a service, a shard's share used up,
 * or the service near its quota), the create takes the slow path: it locks every shard of the
 * service (in shard order), counts them, and fails with `check_violation` on
 * `jobs_within_max_jobs` when the service is full; otherwise it takes its slot and shares what
 * is left of `max_jobs` out again evenly. Near the quota every create so takes the slow path,
 * and the creates of a service serialise there, as they must for an exact count. Changing
 * `max_jobs` shares the allowance out again under the same locks. A delete decrements its
 * connection's shard (a count may go below zero; only the sum means anything).
 *
 * `service_job_count(id)` is the service's count. Backfilled under a share lock on `jobs`, so
 * an older api instance still running cannot insert or delete a job between the count and the
 * new triggers; `services.job_count` and the triggers of 0003 are dropped.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    LOCK TABLE jobs IN SHARE MODE;
    DROP TRIGGER jobs_within_max_jobs ON jobs;
    DROP TRIGGER jobs_count_delete ON jobs;
    DROP FUNCTION jobs_count_insert();
    DROP FUNCTION jobs_count_delete();
    ALTER TABLE services DROP COLUMN job_count;

    CREATE TABLE service_job_shards (
      service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
      shard smallint NOT NULL,
      n integer NOT NULL DEFAULT 0,
      cap integer NOT NULL DEFAULT 0,
      PRIMARY KEY (service_id, shard),
      CHECK (n <= cap)
    );
    INSERT INTO service_job_shards (service_id, shard, n, cap)
      SELECT service_id, 0, count(*)::integer, count(*)::integer FROM jobs GROUP BY service_id;

    CREATE FUNCTION job_count_shards() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 32';

    CREATE FUNCTION service_job_count(sid uuid) RETURNS integer LANGUAGE sql STABLE AS
      'SELECT coalesce(sum(n), 0)::integer FROM service_job_shards WHERE service_id = sid';

    -- Locks every shard of the service, then takes want slots on shard mine and shares what is
    -- left of max_jobs out evenly as the shards' caps. With want > 0, a full service raises.
    CREATE FUNCTION service_job_shards_share(sid uuid, mine smallint, want integer) RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE
      shards integer := job_count_shards();
      quota integer;
      total integer;
      spare integer;
    BEGIN
      SELECT max_jobs INTO quota FROM services WHERE id = sid;
      IF NOT FOUND THEN RETURN; END IF;
      INSERT INTO service_job_shards (service_id, shard)
        SELECT sid, g FROM generate_series(0, shards - 1) AS g
        ON CONFLICT DO NOTHING;
      PERFORM 1 FROM service_job_shards WHERE service_id = sid ORDER BY shard FOR UPDATE;
      SELECT max_jobs INTO quota FROM services WHERE id = sid;
      SELECT coalesce(sum(n), 0) INTO total FROM service_job_shards WHERE service_id = sid;
      IF want > 0 AND total + want > quota THEN
        RAISE EXCEPTION 'service % holds its max_jobs already', sid
          USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_within_max_jobs';
      END IF;
      spare := greatest(0, quota - total - want);
      UPDATE service_job_shards
        SET n = n + CASE WHEN shard = mine THEN want ELSE 0 END,
            cap = n + CASE WHEN shard = mine THEN want ELSE 0 END
              + spare / shards + CASE WHEN shard < spare % shards THEN 1 ELSE 0 END
        WHERE service_id = sid;
    END $$;

    -- Statement-level, with the statement's rows: one shard operation per service a statement
    -- touches, however many rows (a bulk insert is one, not one per row). The api's create is a
    -- lone INSERT that commits at once, so the shard it takes is held for that commit only.
    CREATE FUNCTION jobs_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      shards integer := job_count_shards();
      mine smallint := pg_backend_pid() % shards;
      added record;
      taken smallint;
    BEGIN
      FOR added IN SELECT service_id, count(*)::integer AS n FROM inserted GROUP BY service_id ORDER BY service_id LOOP
        -- Never waits: a shard another create holds is skipped. A shard the scan locked but found
        -- used up meanwhile would stay locked to the end of the transaction: the block is left by
        -- an exception when nothing was taken, and so is that lock (its subtransaction's), so the
        -- slow path starts holding no shard and its ordered locks cannot deadlock with another's.
        BEGIN
          SELECT shard INTO taken FROM service_job_shards
            WHERE service_id = added.service_id AND n + added.n <= cap
            ORDER BY (shard - mine + shards) % shards
            LIMIT 1 FOR UPDATE SKIP LOCKED;
          IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'no_data_found';
          END IF;
          UPDATE service_job_shards SET n = n + added.n WHERE service_id = added.service_id AND shard = taken;
        EXCEPTION WHEN no_data_found THEN
          PERFORM service_job_shards_share(added.service_id, mine, added.n);
        END;
      END LOOP;
      RETURN NULL;
    END $$;
    CREATE TRIGGER jobs_within_max_jobs AFTER INSERT ON jobs REFERENCING NEW TABLE AS inserted
      FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_insert();

    CREATE FUNCTION jobs_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      mine smallint := pg_backend_pid() % job_count_shards();
      removed record;
    BEGIN
      FOR removed IN SELECT service_id, count(*)::integer AS n FROM deleted GROUP BY service_id ORDER BY service_id LOOP
        UPDATE service_job_shards SET n = n - removed.n WHERE service_id = removed.service_id AND shard = mine;
        IF NOT FOUND THEN
          -- The shard does not exist yet (or the service is gone, cascading: nothing to count).
          INSERT INTO service_job_shards (service_id, shard, n, cap)
            SELECT removed.service_id, mine, -removed.n, 0 FROM services WHERE id = removed.service_id
            ON CONFLICT (service_id, shard) DO UPDATE SET n = service_job_shards.n + excluded.n;
        END IF;
      END LOOP;
      RETURN NULL;
    END $$;
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS deleted
      FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_delete();

    CREATE FUNCTION services_share_max_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM service_job_shards_share(NEW.id, 0::smallint, 0);
      RETURN NULL;
    END $$;
    CREATE TRIGGER services_share_max_jobs AFTER UPDATE OF max_jobs ON services
      FOR EACH ROW WHEN (OLD.max_jobs IS DISTINCT FROM NEW.max_jobs)
      EXECUTE FUNCTION services_share_max_jobs();
  `.execute(db);
}
