/**
 * The end-to-end files that run one at a time, beside no other file (the project
 * `@tickwork/e2e-serial`, e2e/vitest.serial.config.ts), while the rest run two at a time:
 * - build.test.ts rebuilds dist/ (turbo's build rewrites its files), and start.test.ts runs dist/
 *   through `npm start`: neither may meet a build of the other half-written;
 * - bull-board.browser.test.ts drives Chromium, which takes both cores while it starts and may
 *   install it with apt-get.
 */
export const SERIAL_FILES = ['build.test.ts', 'start.test.ts', 'bull-board.browser.test.ts'];
