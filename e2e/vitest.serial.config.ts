import { defineConfig } from 'vitest/config';
import { SERIAL_FILES } from './lib/serial-files.ts';

// The end-to-end files that run alone (e2e/lib/serial-files.ts says why): one at a time, after
// the other end-to-end files, in the group of the chaos suite (which runs one at a time too).
export default defineConfig({
  test: {
    name: '@tickwork/e2e-serial',
    include: SERIAL_FILES,
    maxWorkers: 1,
    sequence: { groupOrder: 3 },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
