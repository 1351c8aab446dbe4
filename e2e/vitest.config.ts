import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // The chaos suite is a project of its own (e2e/chaos/vitest.config.ts): its files run one at a time.
    exclude: ['chaos/**', '**/node_modules/**'],
    // Real processes on two cores: one file at a time, after the unit projects (groups 0 and 1).
    maxWorkers: 1,
    sequence: { groupOrder: 2 },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
