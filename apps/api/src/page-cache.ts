/**
 * List pages served from rows serialized once. A page is read in two steps: its ids and row
 * versions (`Stamped`: each row's `xmin`, which every update changes), then, for the rows this
 * instance has not serialized at that version, the rows themselves. The body is the kept JSON of
 * each row joined, so a page read again costs one small query and no per-row parse or serialize.
 *
 * No notification is needed for this to stay true: a kept row is answered only for the exact
 * row version it was made from, so a page is as fresh as its first query, on every instance, and
 * a change by the worker (a run's outcome, a job's `runCount`) is seen at once. Entries age out
 * after `maxAgeMs` (a transaction id repeats only after ~4 billion transactions), and one whose
 * JSON depends on the clock (a job's `skipUntil` shown until it passes) only until then. At
 * most `maxEntries` are kept. `TICKWORK_PAGE_CACHE=off` reads and serializes every row.
 *
 * The whole body of a page is kept too, beside the ids and versions it was made from, as the one
 * text the first query answers (`StampText`): a page whose first query answers exactly that text
 * (the same rows at the same versions, so the same next cursor) is answered with the same bytes
 * after one string comparison, so a list read again parses no row and allocates no new body.
 * Kept bodies are bounded by `maxPageBytes` in all, the oldest dropped first.
 */
import { pageOfStamps, type StampText, type Stamped } from '@tickwork/db';

interface Entry {
  stamp: string;
  json: Buffer;
  until: number;
}

interface KeptPage {
  stamps: StampText;
  body: Buffer;
  until: number;
}

export interface SerializedRowsOptions {
  maxEntries?: number;
  maxAgeMs?: number;
  /**
   * @defaultValue 1 MiB: the bodies of whole pages kept at most, in bytes (a dozen pages of 100 jobs). A create
   * makes a new first page of its service's list, so under creates the kept pages are mostly ones no read will
   * find again; this bound is what they cost.
   */
  maxPageBytes?: number;
}

/** Which kept page a page could be: its limit, first row and length (the whole texts are then compared). */
const pageKeyOf = ({ text, limit }: StampText) => `${limit}:${text.length}:${text.slice(0, 48)}`;

/** Serialized rows by id, each good for one row version. */
export class SerializedRows {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxAgeMs: number;
  readonly #pages = new Map<string, KeptPage>();
  readonly #maxPageBytes: number;
  #pageBytes = 0;

  constructor(options: SerializedRowsOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
    this.#maxPageBytes = options.maxPageBytes ?? 1024 * 1024;
  }

  /** The row's JSON if it was serialized at this version and is still good at `now`. */
  get(id: string, stamp: string, now: number): Buffer | undefined {
    return this.#entry(id, stamp, now)?.json;
  }

  #entry(id: string, stamp: string, now: number): Entry | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) return undefined;
    if (entry.stamp === stamp && entry.until > now) return entry;
    this.#entries.delete(id);
    return undefined;
  }

  /** The kept body of this page: the same rows at the same versions (so the same cursor), still good at `now`. */
  page(stamps: StampText, now: number): Buffer | undefined {
    const kept = this.#pages.get(pageKeyOf(stamps));
    if (kept === undefined || kept.until <= now) return undefined;
    return kept.stamps.text === stamps.text && kept.stamps.limit === stamps.limit ? kept.body : undefined;
  }

  /** Keeps a page's body, made from exactly its rows at its versions, until `until` at the latest. */
  setPage(stamps: StampText, body: Buffer, until: number): void {
    const key = pageKeyOf(stamps);
    this.#dropPage(key);
    if (body.length > this.#maxPageBytes) return;
    while (this.#pageBytes + body.length > this.#maxPageBytes) {
      // Maps iterate in insertion order: the first page is the oldest.
      const oldest = this.#pages.keys().next();
      if (oldest.done) break;
      this.#dropPage(oldest.value);
    }
    this.#pages.set(key, { stamps, body, until });
    this.#pageBytes += body.length;
  }

  #dropPage(key: string): void {
    const kept = this.#pages.get(key);
    if (kept === undefined) return;
    this.#pages.delete(key);
    this.#pageBytes -= kept.body.length;
  }

  /** Bytes of whole pages kept. */
  get pageBytes(): number {
    return this.#pageBytes;
  }

  /** Row JSON as kept for a version, for `pageBody`. */
  entry(id: string, stamp: string, now: number): { json: Buffer; until: number } | undefined {
    return this.#entry(id, stamp, now);
  }

  /** Keeps a row's JSON for its version, until `until` at the latest (default: the maximum age). */
  set(id: string, stamp: string, json: Buffer, now: number, until = Number.POSITIVE_INFINITY): void {
    this.#entries.delete(id);
    if (this.#entries.size >= this.#maxEntries) {
      // Maps iterate in insertion order: the first entry is the oldest.
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(id, { stamp, json, until: Math.min(until, now + this.#maxAgeMs) });
  }

  get size(): number {
    return this.#entries.size;
  }
}

export interface PageParts<R extends Stamped> {
  /** Reads the rows of these ids, each with its current stamp (rows gone since are left out). */
  load: (ids: string[]) => Promise<R[]>;
  /** A row's JSON, as the response schema serializes one item. */
  serialize: (row: R) => string;
  /** Until when a row's JSON holds at the latest (a clock-dependent field), if not for ever. */
  until?: (row: R, now: number) => number;
}

const OPEN = Buffer.from('{"items":[');
const COMMA = Buffer.from(',');

/**
 * The JSON body `{"items":[…],"nextCursor":…}` of a stamped page: kept rows where their version
 * matches, the others read in one query, serialized and kept. The items keep the page's order.
 * Rows are kept as bytes and the body is one copy of them: a string joined from a hundred parts
 * would be flattened, measured and encoded again on every send.
 */
export async function pageBody<R extends Stamped>(
  stamps: StampText,
  rows: SerializedRows,
  parts: PageParts<R>,
): Promise<Buffer> {
  const now = Date.now();
  const kept = rows.page(stamps, now);
  if (kept !== undefined) return kept;
  const page = pageOfStamps(stamps);
  const items: Array<Buffer | undefined> = new Array(page.items.length);
  const missing: string[] = [];
  const at = new Map<string, number>();
  // Until when the body holds (its rows' soonest), and whether every row is at the page's version.
  let until = Number.POSITIVE_INFINITY;
  let exact = true;
  page.items.forEach((item, i) => {
    const entry = rows.entry(item.id, item.stamp, now);
    if (entry === undefined) {
      missing.push(item.id);
      at.set(item.id, i);
    } else {
      items[i] = entry.json;
      until = Math.min(until, entry.until);
    }
  });
  if (missing.length > 0) {
    for (const row of await parts.load(missing)) {
      const i = at.get(row.id);
      if (i === undefined) continue;
      const json = Buffer.from(parts.serialize(row));
      items[i] = json;
      // A newer version than the page's first read is answered as it is now, and kept as that.
      rows.set(row.id, row.stamp, json, now, parts.until?.(row, now));
      if (row.stamp !== page.items[i]!.stamp) exact = false;
      until = Math.min(until, rows.entry(row.id, row.stamp, now)?.until ?? now);
    }
  }
  const chunks: Buffer[] = [OPEN];
  for (const json of items) {
    // A row deleted between the two reads is left out, as a read after the delete would.
    if (json === undefined) {
      exact = false;
      continue;
    }
    if (chunks.length > 1) chunks.push(COMMA);
    chunks.push(json);
  }
  chunks.push(Buffer.from(`],"nextCursor":${page.nextCursor === null ? 'null' : JSON.stringify(page.nextCursor)}}`));
  const body = Buffer.concat(chunks);
  // Only a body made of exactly the page's rows at its versions answers that page again.
  if (exact) rows.setPage(stamps, body, until);
  return body;
}
