/** Keyset cursors: opaque to clients, the last id of the page underneath. */
function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The id inside a cursor, or undefined when the cursor is not one of ours. */
export function decodeCursor(cursor: string): string | undefined {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  return UUID.test(id) ? id : undefined;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Cuts a `limit + 1` result into a page and the cursor of the next one. */
export function pageOf<T extends { id: string }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.id) : null };
}

/**
 * A row version: `xmin`, the transaction that wrote the row as it is now. Every update writes a
 * new one, so a serialized row kept under (id, stamp) is exactly the row while the stamp matches
 * (`xmin` can repeat only after ~4 billion transactions: keepers bound their entries' age).
 */
export interface Stamped {
  id: string;
  stamp: string;
}

/**
 * A page's ids and row versions as one text, the way Postgres sends it in one field of one row:
 * `<id> <xmin>` per row in the page's order, `,` between rows, up to `limit + 1` rows (the last
 * only says there is a next page). Two reads of a page with the same text found the same rows at
 * the same versions and the same next cursor: one string comparison, no row parsed.
 */
export interface StampText {
  text: string;
  limit: number;
}

/** The SQL of a {@link StampText}: each row's id and version, in the page's order (`id desc`). */
export const STAMP_TEXT_SQL = `coalesce(string_agg(id::text || ' ' || xmin::text, ',' order by id desc), '')`;

/** The rows of a {@link StampText} as a page (an id is a UUID's 36 characters). */
export function pageOfStamps({ text, limit }: StampText): Page<Stamped> {
  if (text === '') return { items: [], nextCursor: null };
  const rows = text.split(',').map((row) => ({ id: row.slice(0, 36), stamp: row.slice(37) }));
  return pageOf(rows, limit);
}

/** The {@link StampText} of stamped rows (`limit + 1` at most), as the query would send it. */
export const stampTextOf = (rows: readonly Stamped[], limit: number): StampText => ({
  text: rows.map((row) => `${row.id} ${row.stamp}`).join(','),
  limit,
});
