/**
 * The allocation sites of a sampling heap profile (`.heapprofile`, e.g. gc-observe.mjs's with
 * BENCH_HEAP_SAMPLE), largest first: `node bench/src/heap-top.ts <file> [--top 25] [--per N]`.
 * Each line: the bytes sampled at that site (a function and its place), their share, and the
 * nearest caller outside node_modules (what of ours asked for it); then the totals by package.
 * `--per N` also divides each figure by N (e.g. the occurrences of the sampled stretch).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Node {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: Node[];
}
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' }, per: { type: 'string' } },
});
if (!positionals[0]) throw new Error('usage: node bench/src/heap-top.ts <file.heapprofile> [--top 25] [--per N]');
const profile = JSON.parse(readFileSync(positionals[0], 'utf8')) as { head: Node };
const short = (url: string) =>
  url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\/(\.pnpm\/[^/]+\/node_modules\/)?/, '');
const where = (f: Node['callFrame']) => `${f.functionName || '(anonymous)'} ${short(f.url)}:${f.lineNumber + 1}`;
const packageOf = (url: string) => {
  const m = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  const ours = /\/(apps\/[^/]+|packages\/[^/]+)\//.exec(url);
  return ours ? ours[1]! : url.startsWith('node:') ? 'node' : url ? url : '(vm)';
};
const sites = new Map<string, { bytes: number; ours: Map<string, number> }>();
const packages = new Map<string, number>();
let total = 0;
const walk = (node: Node, ours: string) => {
  const url = node.callFrame.url;
  const here = url && !url.includes('node_modules') && !url.startsWith('node:') ? where(node.callFrame) : ours;
  if (node.selfSize > 0) {
    const key = where(node.callFrame);
    const site = sites.get(key) ?? { bytes: 0, ours: new Map() };
    site.bytes += node.selfSize;
    site.ours.set(here, (site.ours.get(here) ?? 0) + node.selfSize);
    sites.set(key, site);
    packages.set(packageOf(url), (packages.get(packageOf(url)) ?? 0) + node.selfSize);
    total += node.selfSize;
  }
  for (const child of node.children) walk(child, here);
};
walk(profile.head, '(none of ours)');
const per = values.per ? Number(values.per) : undefined;
const fmt = (bytes: number) =>
  `${(bytes / 1024).toFixed(0).padStart(7)} KiB${per ? ` (${(bytes / per).toFixed(0).padStart(6)} B each)` : ''}`;
console.log(`sampled ${fmt(total)}`);
for (const [key, site] of [...sites].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(values.top))) {
  const [ours] = [...site.ours].sort((a, b) => b[1] - a[1]);
  console.log(`${fmt(site.bytes)} ${((100 * site.bytes) / total).toFixed(1).padStart(5)}%  ${key}  ← ${ours?.[0]}`);
}
console.log('by package:');
for (const [name, bytes] of [...packages].sort((a, b) => b[1] - a[1]).slice(0, 15))
  console.log(`${fmt(bytes)} ${((100 * bytes) / total).toFixed(1).padStart(5)}%  ${name}`);
