/** Small statistics helpers: every figure is a median over rounds, every latency a percentile. */

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const median = (values: number[]): number => percentile(values, 50);

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rotates the order of the contestants each round, so none always runs first (a warm cache) or last. */
export function rotated<T>(items: T[], roundIndex: number): T[] {
  const k = roundIndex % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}
