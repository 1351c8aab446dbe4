/**
 * Whole page bodies kept beside their rows' versions (`pageBody`): the same page answers the
 * same bytes without loading or serializing a row, and any difference in its rows, their
 * versions, its cursor, a row's clock-bound JSON or the byte bound makes it again.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stampTextOf, type StampText, type Stamped } from '@tickwork/db';
import { pageBody, SerializedRows, type PageParts } from './page-cache.ts';

// Ids are UUIDs, as a page's text has them.
const A = '0190a000-0000-7000-8000-00000000000a';
const B = '0190a000-0000-7000-8000-00000000000b';
const NEXT = '0190a000-0000-7000-8000-000000000000';

interface Row extends Stamped {
  name: string;
  until?: number;
}

function store(rows: Row[]) {
  const byId = new Map(rows.map((row) => [row.id, row]));
  const loads: string[][] = [];
  const parts: PageParts<Row> = {
    load: async (ids) => {
      loads.push(ids);
      return ids.flatMap((id) => (byId.has(id) ? [byId.get(id)!] : []));
    },
    serialize: (row) => JSON.stringify({ id: row.id, name: row.name }),
    until: (row) => row.until ?? Number.POSITIVE_INFINITY,
  };
  // `more`: one row past the page, as the query reads `limit + 1`, so the page has a next cursor.
  const pageOf = (more = false): StampText => {
    const items = [...byId.values()].map((row) => ({ id: row.id, stamp: row.stamp }));
    return stampTextOf(more ? [...items, { id: NEXT, stamp: '1' }] : items, items.length);
  };
  return { byId, loads, parts, pageOf };
}

describe('pageBody keeps whole pages', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('answers the same page with the same bytes, loading nothing', async () => {
    const rows = new SerializedRows();
    const { loads, parts, pageOf } = store([
      { id: A, stamp: '1', name: 'first' },
      { id: B, stamp: '1', name: 'second' },
    ]);
    const first = await pageBody(pageOf(), rows, parts);
    expect(JSON.parse(first.toString())).toEqual({
      items: [
        { id: A, name: 'first' },
        { id: B, name: 'second' },
      ],
      nextCursor: null,
    });
    const again = await pageBody(pageOf(), rows, parts);
    expect(again).toBe(first);
    expect(loads).toEqual([[A, B]]);
    expect(rows.pageBytes).toBe(first.length);
  });

  it('makes the body again for a new version of one row, and for another cursor', async () => {
    const rows = new SerializedRows();
    const { byId, loads, parts, pageOf } = store([
      { id: A, stamp: '1', name: 'first' },
      { id: B, stamp: '1', name: 'second' },
    ]);
    const first = await pageBody(pageOf(), rows, parts);
    byId.set(B, { id: B, stamp: '2', name: 'changed' });
    const changed = await pageBody(pageOf(), rows, parts);
    expect(changed).not.toBe(first);
    expect(JSON.parse(changed.toString()).items[1]).toEqual({ id: B, name: 'changed' });
    // Only the changed row was read again.
    expect(loads).toEqual([[A, B], [B]]);
    const withCursor = await pageBody(pageOf(true), rows, parts);
    expect(JSON.parse(withCursor.toString()).nextCursor).toBe(Buffer.from(B).toString('base64url'));
    expect(await pageBody(pageOf(), rows, parts)).toBe(changed);
  });

  it('keeps no body made of a row newer than the page, or without a row deleted meanwhile', async () => {
    const rows = new SerializedRows();
    const { byId, parts, pageOf } = store([
      { id: A, stamp: '1', name: 'first' },
      { id: B, stamp: '1', name: 'second' },
    ]);
    const page = pageOf();
    // Between the page's query and the rows' read: b changes, then a is deleted.
    byId.set(B, { id: B, stamp: '2', name: 'newer' });
    const newer = await pageBody(page, rows, parts);
    expect(JSON.parse(newer.toString()).items[1].name).toBe('newer');
    expect(rows.pageBytes).toBe(0);
    byId.delete(A);
    const rowsAfter = new SerializedRows();
    const without = await pageBody(page, rowsAfter, parts);
    expect(JSON.parse(without.toString()).items.map((item: { id: string }) => item.id)).toEqual([B]);
    expect(rowsAfter.pageBytes).toBe(0);
  });

  it('holds a body only until its soonest clock-bound row, and within the byte bound', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const rows = new SerializedRows({ maxPageBytes: 100 });
    const soon = Date.now() + 50;
    const { parts, pageOf } = store([{ id: A, stamp: '1', name: 'x', until: soon }]);
    const first = await pageBody(pageOf(), rows, parts);
    expect(await pageBody(pageOf(), rows, parts)).toBe(first);
    vi.setSystemTime(soon);
    expect(await pageBody(pageOf(), rows, parts)).not.toBe(first);

    const big = store([{ id: B, stamp: '1', name: 'y'.repeat(200) }]);
    await pageBody(big.pageOf(), rows, big.parts);
    expect(rows.pageBytes).toBeLessThanOrEqual(100);
    await pageBody(big.pageOf(), rows, big.parts);
    expect(big.loads).toHaveLength(1); // the row is kept, the page (over the bound) is not
  });
});
