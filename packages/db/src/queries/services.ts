import { sql, type Kysely } from 'kysely';
import type { Database, JobRow, ServiceRow } from '../types.ts';
import { pageOf, type Page } from './cursor.ts';

export async function insertService(
  db: Kysely<Database>,
  service: { id: string; name: string; signingSecret: string; maxJobs?: number; minIntervalMs?: number },
): Promise<ServiceRow> {
  return db
    .insertInto('services')
    .values({
      id: service.id,
      name: service.name,
      signing_secret: service.signingSecret,
      ...(service.maxJobs === undefined ? {} : { max_jobs: service.maxJobs }),
      ...(service.minIntervalMs === undefined ? {} : { min_interval_ms: service.minIntervalMs }),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findServiceById(db: Kysely<Database>, id: string): Promise<ServiceRow | undefined> {
  return db.selectFrom('services').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Services in creation order (UUIDv7 ids), by keyset. */
export async function listServices(
  db: Kysely<Database>,
  filter: { limit: number; afterId?: string | undefined },
): Promise<Page<ServiceRow>> {
  let query = db.selectFrom('services').selectAll();
  if (filter.afterId) query = query.where('id', '>', filter.afterId);
  const rows = await query
    .orderBy('id', 'asc')
    .limit(filter.limit + 1)
    .execute();
  return pageOf(rows, filter.limit);
}

export async function updateServiceQuotas(
  db: Kysely<Database>,
  id: string,
  quotas: { maxJobs?: number | undefined; minIntervalMs?: number | undefined },
): Promise<ServiceRow | undefined> {
  const values = {
    ...(quotas.maxJobs === undefined ? {} : { max_jobs: quotas.maxJobs }),
    ...(quotas.minIntervalMs === undefined ? {} : { min_interval_ms: quotas.minIntervalMs }),
  };
  // No quota given: nothing to change (an UPDATE without a SET is not SQL).
  if (Object.keys(values).length === 0) return findServiceById(db, id);
  return db.updateTable('services').set(values).where('id', '=', id).returningAll().executeTakeFirst();
}

/** Disables (keys refused, jobs not fired) or enables a service. Keeps the first disable time. */
export async function setServiceDisabled(
  db: Kysely<Database>,
  id: string,
  disabled: boolean,
): Promise<ServiceRow | undefined> {
  return db
    .updateTable('services')
    .set({ disabled_at: disabled ? sql<Date>`coalesce(disabled_at, now())` : null })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/**
 * Makes `sealed` the current signing secret and the current one the previous, valid until
 * `previousExpiresAt`. One statement, so two rotations at once cannot lose a secret in between.
 */
export async function rotateSigningSecret(
  db: Kysely<Database>,
  id: string,
  sealed: string,
  previousExpiresAt: Date,
): Promise<ServiceRow | undefined> {
  return db
    .updateTable('services')
    .set((eb) => ({
      previous_signing_secret: eb.ref('signing_secret'),
      previous_secret_expires_at: previousExpiresAt,
      signing_secret: sealed,
    }))
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** A page of a service's jobs in id order: disable/enable walk them to (un)register schedules. */
export async function jobsOfService(
  db: Kysely<Database>,
  serviceId: string,
  filter: { limit: number; afterId?: string | undefined },
): Promise<JobRow[]> {
  let query = db.selectFrom('jobs').selectAll().where('service_id', '=', serviceId);
  if (filter.afterId) query = query.where('id', '>', filter.afterId);
  return query.orderBy('id', 'asc').limit(filter.limit).execute();
}
