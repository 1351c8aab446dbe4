import { sql, type Kysely } from 'kysely';
import type { Database } from '../types.ts';

/** A response kept for a key: what a repeat of the request gets back. */
export interface StoredResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: unknown;
}

export type KeyClaim =
  /** This request holds the key: run it, then `completeIdempotencyKey` or `releaseIdempotencyKey`. */
  | { kind: 'claimed' }
  | { kind: 'in_flight'; fingerprint: string }
  | { kind: 'done'; fingerprint: string; response: StoredResponse };

/**
 * Claims (service, key) for a request, atomically: the primary key lets one of many parallel
 * requests in. A key that expired, or whose first request never answered within `staleMs` (its
 * process died), is taken over.
 */
export async function claimIdempotencyKey(
  db: Kysely<Database>,
  claim: { serviceId: string; key: string; fingerprint: string; ttlMs: number; staleMs: number },
): Promise<KeyClaim> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const claimed = await db
      .insertInto('idempotency_keys')
      .values({
        service_id: claim.serviceId,
        key: claim.key,
        fingerprint: claim.fingerprint,
        expires_at: sql<Date>`now() + ${`${claim.ttlMs} milliseconds`}::interval`,
      })
      .onConflict((oc) =>
        oc
          .columns(['service_id', 'key'])
          .doUpdateSet({
            fingerprint: (eb) => eb.ref('excluded.fingerprint'),
            status_code: null,
            response: null,
            created_at: sql<Date>`now()`,
            expires_at: (eb) => eb.ref('excluded.expires_at'),
          })
          .where((eb) =>
            eb.or([
              eb('idempotency_keys.expires_at', '<', sql<Date>`now()`),
              eb.and([
                eb('idempotency_keys.status_code', 'is', null),
                eb('idempotency_keys.created_at', '<', sql<Date>`now() - ${`${claim.staleMs} milliseconds`}::interval`),
              ]),
            ]),
          ),
      )
      .returning('key')
      .executeTakeFirst();
    if (claimed) return { kind: 'claimed' };
    const existing = await db
      .selectFrom('idempotency_keys')
      .selectAll()
      .where('service_id', '=', claim.serviceId)
      .where('key', '=', claim.key)
      .executeTakeFirst();
    // Released between the two statements: try to claim it again.
    if (!existing) continue;
    if (existing.status_code === null || existing.response === null) {
      return { kind: 'in_flight', fingerprint: existing.fingerprint };
    }
    const stored = existing.response as { headers?: Record<string, string>; body?: unknown };
    return {
      kind: 'done',
      fingerprint: existing.fingerprint,
      response: { statusCode: existing.status_code, headers: stored.headers ?? {}, body: stored.body ?? null },
    };
  }
  return { kind: 'in_flight', fingerprint: claim.fingerprint };
}

export async function completeIdempotencyKey(
  db: Kysely<Database>,
  serviceId: string,
  key: string,
  response: StoredResponse,
): Promise<void> {
  await db
    .updateTable('idempotency_keys')
    .set({
      status_code: response.statusCode,
      response: JSON.stringify({ headers: response.headers, body: response.body }),
    })
    .where('service_id', '=', serviceId)
    .where('key', '=', key)
    .execute();
}

/** Gives a key back after a failure worth retrying (5xx), so the client's retry runs afresh. */
export async function releaseIdempotencyKey(db: Kysely<Database>, serviceId: string, key: string): Promise<void> {
  await db
    .deleteFrom('idempotency_keys')
    .where('service_id', '=', serviceId)
    .where('key', '=', key)
    .where('status_code', 'is', null)
    .execute();
}

/** Deletes expired keys, a batch at a time. */
export async function pruneIdempotencyKeys(
  db: Kysely<Database>,
  options: { batchSize?: number } = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 1_000;
  let total = 0;
  for (;;) {
    const result = await db
      .deleteFrom('idempotency_keys')
      .where(
        sql<boolean>`(service_id, key) in (select service_id, key from idempotency_keys where expires_at < now() limit ${batchSize} for update skip locked)`,
      )
      .executeTakeFirst();
    const deleted = Number(result.numDeletedRows);
    total += deleted;
    if (deleted < batchSize) return total;
  }
}
