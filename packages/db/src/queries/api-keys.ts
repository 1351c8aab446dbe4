import type { Kysely } from 'kysely';
import type { Database } from '../types.ts';

export async function insertApiKey(
  db: Kysely<Database>,
  key: { id: string; serviceId: string; prefix: string; hash: string; scopes: string[]; expiresAt?: Date | null },
): Promise<void> {
  await db
    .insertInto('api_keys')
    .values({
      id: key.id,
      service_id: key.serviceId,
      prefix: key.prefix,
      hash: key.hash,
      scopes: key.scopes,
      expires_at: key.expiresAt ?? null,
    })
    .execute();
}

export interface Principal {
  keyId: string;
  serviceId: string;
  scopes: string[];
}

/**
 * The key with this hash, if it may be used now: not revoked, not expired, and its service not
 * disabled. The hash is the lookup key, so no secret is ever compared in the database.
 */
export async function findUsableKey(db: Kysely<Database>, hash: string): Promise<Principal | undefined> {
  const row = await db
    .selectFrom('api_keys')
    .innerJoin('services', 'services.id', 'api_keys.service_id')
    .select(['api_keys.id', 'api_keys.service_id', 'api_keys.scopes', 'api_keys.hash'])
    .where('api_keys.hash', '=', hash)
    .where('api_keys.revoked_at', 'is', null)
    .where('services.disabled_at', 'is', null)
    .where((eb) => eb.or([eb('api_keys.expires_at', 'is', null), eb('api_keys.expires_at', '>', new Date())]))
    .executeTakeFirst();
  return row ? { keyId: row.id, serviceId: row.service_id, scopes: row.scopes } : undefined;
}
