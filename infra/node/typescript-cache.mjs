/**
 * Preload (`node --import ./infra/node/typescript-cache.mjs …`) that hands Node our TypeScript
 * sources with their types already stripped, from a cache on disk, so the process never loads
 * Node's own type stripper. That stripper (amaro: swc compiled to WebAssembly) keeps its memory
 * once loaded: 17-36 MiB of the api's and the worker's resident memory (bench/RESULTS.md).
 *
 * A source whose entry is missing (a fresh clone, an edit) makes the process run
 * `strip-sources.mjs` once, in a child process that pays for the stripper and exits. Anything
 * still missing after that (a source outside `apps/*\/src` and `packages/*\/src`, a cache that
 * cannot be written) loads the ordinary way: same result, more memory. The stripped text keeps
 * every line and column (types become spaces), so stack traces point at the sources.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDirOf, cacheKeyOf } from './typescript-cache-key.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cacheDir = cacheDirOf(root);
const stripper = fileURLToPath(new URL('./strip-sources.mjs', import.meta.url));
let refreshed = false;

function cached(key) {
  try {
    return readFileSync(join(cacheDir, `${key}.js`), 'utf8');
  } catch {
    return undefined;
  }
}

registerHooks({
  load(url, context, next) {
    if (!url.startsWith('file:') || !url.endsWith('.ts') || url.includes('/node_modules/')) return next(url, context);
    const source = readFileSync(fileURLToPath(url), 'utf8');
    const key = cacheKeyOf(source);
    let stripped = cached(key);
    if (stripped === undefined && !refreshed) {
      refreshed = true;
      spawnSync(process.execPath, ['--no-warnings', stripper, cacheDir], { stdio: 'ignore' });
      stripped = cached(key);
    }
    if (stripped === undefined) return next(url, context);
    return { format: 'module', source: stripped, shortCircuit: true };
  },
});
