import { sql, type Kysely } from 'kysely';

/**
 * `jobs.target_body`: a callback body exactly as the client sent it, as JSON text (key order,
 * spacing and all; a string body as its JSON string literal). `target` is `jsonb`, which reorders
 * keys and drops spacing, so a body kept only there reached the callback as other bytes than
 * those stored.
 *
 * No backfill: a row without it (written before this migration, or by an older api during a
 * rolling deploy) still has its body in `target`, and readers fall back to that. Writers keep
 * writing the body into `target` too, for the workers of the previous version until every one is
 * replaced; a later migration can drop that copy. Adding a nullable column without a default does
 * not rewrite the table.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE jobs ADD COLUMN target_body text`.execute(db);
}
