import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The chaos scenarios kill processes and measure recovery: one file at a time, so they
    // neither starve each other of the two cores nor share a disturbance.
    fileParallelism: false,
  },
});
