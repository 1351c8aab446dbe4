import { defineConfig } from 'vitest/config';

// The worker's tests make BullMQ occurrences a second or two ahead of the clock: they run one file
// at a time, as a group of their own after the other unit projects (three files at a time) and
// before the suites of real processes (e2e, chaos).
export default defineConfig({
  test: { include: ['src/**/*.test.ts', 'test/**/*.test.ts'], maxWorkers: 1, sequence: { groupOrder: 1 } },
});
