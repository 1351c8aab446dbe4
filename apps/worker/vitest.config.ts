import { defineConfig } from 'vitest/config';

// Unit and in-process tests: two files at a time, as the first group of `npm test`; the suites of
// real processes (e2e, chaos) follow as a group of their own, one file at a time.
export default defineConfig({
  test: { include: ['src/**/*.test.ts', 'test/**/*.test.ts'], maxWorkers: 2, sequence: { groupOrder: 0 } },
});
