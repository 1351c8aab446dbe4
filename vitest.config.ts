import { defineConfig } from 'vitest/config';

/** `npm test` runs every project in one vitest run, so CI reads one summary. */
export default defineConfig({
  test: {
    globalSetup: ['./test/global-setup.ts'],
    projects: ['packages/*', 'apps/*', 'e2e', 'e2e/vitest.serial.config.ts', 'e2e/chaos'],
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
