/**
 * Strips the types from every TypeScript source the api and the worker run (`apps/<app>/src`,
 * `packages/<pkg>/src`, tests left out) into the cache `typescript-cache.mjs` serves from. Run by
 * that preload in a child process the first time a process meets a source it has not cached, and
 * by the Dockerfile at build time (the image's files are read-only at run time). Plain JavaScript
 * on purpose: running it must not need the type stripper in the process that serves the cache.
 *
 *   node infra/node/strip-sources.mjs [cacheDir]
 */
import { stripTypeScriptTypes } from 'node:module';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDirOf, cacheKeyOf } from './typescript-cache-key.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cacheDir = process.argv[2] ?? cacheDirOf(root);

function* sources(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (/(?<!\.d|\.test|\.spec)\.ts$/.test(entry.name)) yield path;
  }
}

mkdirSync(cacheDir, { recursive: true });
const kept = new Set();
for (const top of ['apps', 'packages']) {
  let names = [];
  try {
    names = readdirSync(join(root, top));
  } catch {
    continue;
  }
  for (const name of names) {
    for (const path of sources(join(root, top, name, 'src'))) {
      const source = readFileSync(path, 'utf8');
      const key = cacheKeyOf(source);
      kept.add(key);
      const stripped = stripTypeScriptTypes(source, { mode: 'strip' });
      // Write, then rename: another process starting at the same time reads whole files only.
      const temporary = join(cacheDir, `${key}.${process.pid}.tmp`);
      writeFileSync(temporary, stripped);
      renameSync(temporary, join(cacheDir, `${key}.js`));
    }
  }
}
// Sources that changed since leave entries nobody will ask for again.
for (const name of readdirSync(cacheDir)) {
  if (name.endsWith('.js') && !kept.has(name.slice(0, -3))) rmSync(join(cacheDir, name), { force: true });
}
