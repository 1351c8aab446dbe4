import type { Kysely } from 'kysely';
import type { ApiKeyRow, Database } from '../types.ts';

export async function insertApiKey(
  db: Kysely<Database>,
  key: { id: string; serviceId: string; prefix: string; hash: string; scopes: string[]; expiresAt?: Date | null },
): Promise<ApiKeyRow> {
  return db
    .insertInto('api_keys')
    .values({
      id: key.id,
      service_id: key.serviceId,
      prefix: key.prefix,
      hash: key.hash,
      scopes: key.scopes,
      expires_at: key.expiresAt ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export interface Principal {
  keyId: string;
  /** The stored SHA-256, for the caller's constant-time comparison. */
  hash: string;
  serviceId: string;
  scopes: string[];
  lastUsedAt: Date | null;
  /** When the key stops working (the api's principal cache checks it on every request). */
  expiresAt: Date | null;
  /** The service's `min_interval_ms` quota, read with the key: a create needs nothing else of the service. */
  minIntervalMs: number;
}

/**
 * The key with this hash, if it may be used now: not revoked, not expired, and its service not
 * disabled. The hash is the lookup key, so no secret is ever compared in the database. The api
 * keeps principals in process only under the auth epoch (apps/api/src/auth-cache.ts), so a
 * revocation or a disable holds on every api instance from the next request.
 */
export async function findUsableKey(db: Kysely<Database>, hash: string): Promise<Principal | undefined> {
  const row = await db
    .selectFrom('api_keys')
    .innerJoin('services', 'services.id', 'api_keys.service_id')
    .select([
      'api_keys.id',
      'api_keys.hash',
      'api_keys.service_id',
      'api_keys.scopes',
      'api_keys.last_used_at',
      'api_keys.expires_at',
      'services.min_interval_ms',
    ])
    .where('api_keys.hash', '=', hash)
    .where('api_keys.revoked_at', 'is', null)
    .where('services.disabled_at', 'is', null)
    .where((eb) => eb.or([eb('api_keys.expires_at', 'is', null), eb('api_keys.expires_at', '>', new Date())]))
    .executeTakeFirst();
  return row
    ? {
        keyId: row.id,
        hash: row.hash,
        serviceId: row.service_id,
        scopes: row.scopes,
        lastUsedAt: row.last_used_at,
        expiresAt: row.expires_at,
        minIntervalMs: row.min_interval_ms,
      }
    : undefined;
}

/** Records that a key was used; callers do it at most once a minute per key, not per request. */
export async function touchApiKey(db: Kysely<Database>, id: string, at: Date): Promise<void> {
  await db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).execute();
}

export async function listKeysOfService(db: Kysely<Database>, serviceId: string): Promise<ApiKeyRow[]> {
  return db.selectFrom('api_keys').selectAll().where('service_id', '=', serviceId).orderBy('id', 'asc').execute();
}

/** Revokes a key of a service; undefined when the service has no such key. Revoking twice keeps the first time. */
export async function revokeApiKey(
  db: Kysely<Database>,
  serviceId: string,
  keyId: string,
): Promise<ApiKeyRow | undefined> {
  return db
    .updateTable('api_keys')
    .set((eb) => ({ revoked_at: eb.fn.coalesce('revoked_at', eb.val(new Date())) }))
    .where('service_id', '=', serviceId)
    .where('id', '=', keyId)
    .returningAll()
    .executeTakeFirst();
}
