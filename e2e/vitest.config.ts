import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // The chaos suite is a project of its own (e2e/chaos/vitest.config.ts): its files run one at a time.
    exclude: ['chaos/**', '**/node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
