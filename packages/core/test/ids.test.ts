import { describe, expect, it } from 'vitest';
import { uuidv7, uuidv7Floor } from '../src/ids.ts';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('uuidv7', () => {
  it('is a version 7, variant 1 UUID carrying its millisecond, unique across refills of its random pool', () => {
    const now = Date.UTC(2026, 11, 1, 13, 40, 0, 123);
    const ids = Array.from({ length: 1_000 }, () => uuidv7(now));
    for (const id of ids) {
      expect(id).toMatch(V7);
      expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(now);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('sorts by time, above the floor of its millisecond', () => {
    const a = uuidv7(1_000);
    const b = uuidv7(1_001);
    expect(a < b).toBe(true);
    expect(uuidv7Floor(1_001) <= b).toBe(true);
    expect(uuidv7Floor(1_001) > a).toBe(true);
  });
});
