import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: '@tickwork/chaos',
    include: ['**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // The scenarios kill processes and measure recovery: one file at a time, so they neither
    // share a disturbance nor starve each other of the two cores; last, as a group of their own
    // (with the end-to-end files that run alone), after the end-to-end files that run two at a time.
    fileParallelism: false,
    maxWorkers: 1,
    sequence: { groupOrder: 3 },
  },
});
