/** Random bytes for 256 ids at a time: one `getRandomValues` call instead of one per id. */
const POOL = new Uint8Array(16 * 256);
let pooled = POOL.length;
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Time-ordered,
 * so ids sort by creation and keyset pagination on the id follows insertion order.
 */
export function uuidv7(now: number = Date.now()): string {
  if (pooled === POOL.length) {
    globalThis.crypto.getRandomValues(POOL);
    pooled = 0;
  }
  const r = pooled;
  pooled += 16;
  const ms = Math.max(0, Math.floor(now));
  // 48 bits of milliseconds as 12 hex digits (safe: below 2^53).
  const time = ms.toString(16).padStart(12, '0').slice(-12);
  const h = (i: number) => HEX[POOL[r + i]!]!;
  return (
    `${time.slice(0, 8)}-${time.slice(8, 12)}-` +
    `${HEX[(POOL[r + 6]! & 0x0f) | 0x70]}${h(7)}-${HEX[(POOL[r + 8]! & 0x3f) | 0x80]}${h(9)}-` +
    `${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`
  );
}

/**
 * The smallest UUIDv7 of a millisecond: every id made at or after `ms` sorts above it, so
 * "created after ms" is an id range on an index that already exists.
 */
export function uuidv7Floor(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0').slice(-12);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-000000000000`;
}
