import { defineConfig } from 'vitest/config';
import { SERIAL_FILES } from './lib/serial-files.ts';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // The chaos suite is a project of its own (e2e/chaos/vitest.config.ts), and so are the files
    // that must run alone (e2e/vitest.serial.config.ts): both run one file at a time, afterwards.
    exclude: ['chaos/**', '**/node_modules/**', ...SERIAL_FILES],
    // Real processes, but mostly waiting on real time (schedules firing every second): two files
    // at a time, each with its own database, BullMQ prefix, ports and servers, after the unit
    // projects (groups 0 and 1).
    maxWorkers: 2,
    sequence: { groupOrder: 2 },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
