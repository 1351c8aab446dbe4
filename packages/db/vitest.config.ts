import { defineConfig } from 'vitest/config';

// Unit and in-process tests: three files at a time on two cores (each waits on Postgres and Redis
// much of its time), as the first group of `npm test`; the worker's tests, the end-to-end files and
// the chaos suite follow as groups of their own.
export default defineConfig({
  test: { include: ['src/**/*.test.ts', 'test/**/*.test.ts'], maxWorkers: 3, sequence: { groupOrder: 0 } },
});
