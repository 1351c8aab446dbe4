/**
 * The preload that serves our sources with their types already stripped (infra/node/): a
 * process started with it runs our TypeScript without ever loading Node's own stripper, fills an
 * empty cache by itself, and still runs a source the cache does not cover.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TYPESCRIPT_CACHE } from '../infra/node/node-flags.ts';
import { ROOT } from './lib/processes.ts';

const cacheDir = mkdtempSync(join(tmpdir(), 'tw-ts-cache-'));
const outside = mkdtempSync(join(tmpdir(), 'tw-ts-outside-'));
afterAll(() => {
  rmSync(cacheDir, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

/** Imports `specifier` in a fresh node with the preload; prints what it exports and whether the stripper was loaded. */
function importWithPreload(specifier: string) {
  const probe = `const m = await import(${JSON.stringify(specifier)});
console.log(JSON.stringify({ exports: Object.keys(m).length, stripper: process.moduleLoadList.some((x) => x.includes('amaro')) }));`;
  const result = spawnSync(process.execPath, [`--import=${TYPESCRIPT_CACHE}`, '--input-type=module', '-e', probe], {
    cwd: ROOT,
    env: { ...process.env, TICKWORK_TS_CACHE: cacheDir },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(result.stderr).not.toMatch(/Error/);
  expect(result.status).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { exports: number; stripper: boolean };
}

describe('the stripped-source cache', () => {
  it("fills an empty cache once and runs the worker's modules without loading the stripper", () => {
    expect(readdirSync(cacheDir)).toEqual([]);
    const first = importWithPreload('./apps/worker/src/worker.ts');
    expect(first.exports).toBeGreaterThan(0);
    expect(first.stripper).toBe(false);
    const entries = readdirSync(cacheDir);
    expect(entries.length).toBeGreaterThan(10);
    expect(entries.every((name) => name.endsWith('.js'))).toBe(true);
    // A second process finds everything cached (and still never loads the stripper).
    expect(importWithPreload('./apps/api/src/app.ts').stripper).toBe(false);
  });

  it('loads a source the cache does not cover the ordinary way', () => {
    const file = join(outside, 'typed.ts');
    writeFileSync(file, 'export const answer: number = 42;\n');
    const result = importWithPreload(file);
    expect(result).toEqual({ exports: 1, stripper: true });
  });
});
