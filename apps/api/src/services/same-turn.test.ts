/**
 * Identical reads of one turn share one query, sent after the last of them arrived; a read that
 * arrives once the query has begun gets a query of its own, so no answer predates its request.
 */
import { describe, expect, it } from 'vitest';
import { SameTurnReads } from './same-turn.ts';

describe('SameTurnReads', () => {
  it('runs one query for the reads of a key in one turn, after the last of them', async () => {
    const reads = new SameTurnReads<number>();
    const arrived: string[] = [];
    let runs = 0;
    const run = async () => {
      arrived.push('query');
      return ++runs;
    };
    const first = reads.read('k', run);
    arrived.push('second read');
    const second = reads.read('k', run);
    const other = reads.read('other', run);
    expect(await Promise.all([first, second])).toEqual([1, 1]);
    expect(await other).toBe(2);
    // The query began after both reads of its key had arrived.
    expect(arrived).toEqual(['second read', 'query', 'query']);
    expect(reads.size).toBe(0);
  });

  it('gives a read that arrives after the query began a query of its own', async () => {
    const reads = new SameTurnReads<number>();
    let runs = 0;
    let later: Promise<number> | undefined;
    const run = async () => {
      const n = ++runs;
      // Arrives while this query is in flight: must not get this query's answer.
      if (n === 1) later = reads.read('k', async () => ++runs);
      return n;
    };
    expect(await reads.read('k', run)).toBe(1);
    expect(await later).toBe(2);
  });

  it('hands a failed query to every read that shared it', async () => {
    const reads = new SameTurnReads<number>();
    const run = () => Promise.reject(new Error('down'));
    const results = await Promise.allSettled([reads.read('k', run), reads.read('k', run)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
