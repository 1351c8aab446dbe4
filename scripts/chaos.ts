/**
 * `npm run chaos`: the chaos suite alone (e2e/chaos, also part of `npm test`).
 * `npm run chaos -- --soak`: the same scenarios with their disturbances ten times longer
 * (kills for 200 s, Postgres away for 200 s, …); kept out of CI.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const soak = process.argv.includes('--soak');
const rest = process.argv.slice(2).filter((a) => a !== '--soak');
const result = spawnSync('pnpm', ['vitest', 'run', '--project', '@tickwork/chaos', ...rest], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, ...(soak ? { TICKWORK_CHAOS_SOAK: '1' } : {}) },
});
process.exit(result.status ?? 1);
