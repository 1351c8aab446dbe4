import { sql, type Kysely } from 'kysely';

/**
 * Tells every api instance, over `NOTIFY tickwork_cache`, when what it keeps in process goes
 * stale (`packages/db/src/cache-bus.ts`): `a` when an API key or a service changes (revoked,
 * expired, scopes, disabled, quotas, secrets, deleted), `j:<id>` when a job gets a new version
 * or is deleted, or its open alert (migration 0010) opens or resolves. A notification is sent at its transaction's COMMIT, to every listener, in
 * commit order, so whoever writes (api, admin, a migration, psql) invalidates the caches.
 *
 * What the workers write per occurrence (`run_count`, `last_run_*`, `next_run_at`) keeps the
 * version and sends nothing: a NOTIFY serialises the commits of notifying transactions, which
 * would cap the fire path. The job cache keeps a row at most one second for those fields.
 * A key's `last_used_at` (written once a minute per key) sends nothing either.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE FUNCTION tickwork_cache_auth() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      -- Identical notifications of one transaction are sent once.
      IF TG_OP = 'DELETE' OR to_jsonb(OLD) - 'last_used_at' IS DISTINCT FROM to_jsonb(NEW) - 'last_used_at' THEN
        PERFORM pg_notify('tickwork_cache', 'a');
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER api_keys_cache AFTER UPDATE OR DELETE ON api_keys FOR EACH ROW
      EXECUTE FUNCTION tickwork_cache_auth();
    CREATE TRIGGER services_cache AFTER UPDATE OR DELETE ON services FOR EACH ROW
      EXECUTE FUNCTION tickwork_cache_auth();

    CREATE FUNCTION tickwork_cache_job() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'DELETE' OR OLD.version IS DISTINCT FROM NEW.version OR OLD.state IS DISTINCT FROM NEW.state
        OR OLD.open_alert IS DISTINCT FROM NEW.open_alert THEN
        PERFORM pg_notify('tickwork_cache', 'j:' || OLD.id);
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER jobs_cache AFTER UPDATE OR DELETE ON jobs FOR EACH ROW EXECUTE FUNCTION tickwork_cache_job();
  `.execute(db);
}
