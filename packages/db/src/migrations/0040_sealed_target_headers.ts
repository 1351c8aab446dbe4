import { sql, type Kysely } from 'kysely';

/**
 * `jobs.target_headers`: a target's headers, the whole map as JSON sealed with AES-256-GCM under
 * SECRET_KEY (`v1.<iv>.<tag>.<ciphertext>`, like a service's signing secret). Until now the
 * values (bearer tokens, API keys) sat in `target` as plain text.
 *
 * No backfill here: the migration has no key. A row without it (written before this migration)
 * still has its headers in `target.headers`, and readers take them from there; `npm run rekey`
 * seals them, in batches, while the fleet runs. Writers store `target.headers` empty from now on.
 * Adding a nullable column without a default does not rewrite the table.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE jobs ADD COLUMN target_headers text`.execute(db);
}
