/**
 * The flags every api and worker process is started with, wherever it is started: `npm start`
 * (scripts/start.ts), the e2e and bench helpers (e2e/lib/processes.ts), the image's entry point
 * (infra/docker/entrypoint.sh) and the `api`/`worker` scripts of package.json. e2e/infra.test.ts
 * keeps the literal copies in step with this list. bench/RESULTS.md has the measurements.
 *
 * - the preload that serves our sources with their types already stripped, so Node's own
 *   stripper (17-36 MiB that stays resident) is never loaded;
 * - a young generation of 2 MiB semi-spaces and a 96 MiB old generation: V8 sizes both from the
 *   machine's memory and, on a large box, lets them grow far past what the live data needs (the
 *   processes hold ~30-40 MiB of live heap under load). Idle and peak RSS then stay under
 *   150 MiB, at no measured throughput cost.
 */
export const TYPESCRIPT_CACHE = './infra/node/typescript-cache.mjs';
export const NODE_FLAGS = [
  `--import=${TYPESCRIPT_CACHE}`,
  '--max-old-space-size=96',
  '--max-semi-space-size=2',
] as const;
