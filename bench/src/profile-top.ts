/**
 * `node bench/src/profile-top.ts <file.cpuprofile>…`: the top self-time functions of V8 CPU
 * profiles and the share of each package, the figures RESULTS.md quotes for a missed goal.
 * `PROFILE_INCLUSIVE=deliver,executeQuery,…` also prints the inclusive share (the function and all it
 * calls) of every function whose name is listed.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

function ownerOf(url: string): string {
  if (!url) return '(native/gc/idle)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const m = /\/(apps\/[^/]+|packages\/[^/]+|bench|e2e)\//.exec(url);
  return m ? m[1]! : url;
}

for (const file of process.argv.slice(2)) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  let total = 0;
  const idle = new Set(['(idle)', '(program)']);
  const fns = new Map<string, number>();
  const owners = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const name = node.callFrame.functionName || '(anonymous)';
    if (idle.has(name)) continue;
    total += us;
    const where = node.callFrame.url
      ? `${node.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(apps|packages|bench)\//, '$1/')}:${node.callFrame.lineNumber + 1}`
      : '';
    const key = `${name} ${where}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const owner = name === '(garbage collector)' ? '(garbage collector)' : ownerOf(node.callFrame.url);
    owners.set(owner, (owners.get(owner) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1)}%`.padStart(6);
  console.log(`${file}: ${(total / 1e6).toFixed(1)} s of CPU (idle excluded)`);
  console.log('  by package:');
  for (const [owner, us] of [...owners].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${pct(us)}  ${owner}`);
  console.log('  top functions (self time):');
  for (const [fn, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(us)}  ${fn}`);
  const wanted = new Set((process.env.PROFILE_INCLUSIVE ?? '').split(',').filter(Boolean));
  if (wanted.size === 0) continue;
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    if (idle.has(byId.get(id)!.callFrame.functionName)) continue;
    // Each listed function counted once per sample, however deep it recurses.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (!wanted.has(frame.functionName)) continue;
      const key = `${frame.functionName} ${frame.url.replace(/^.*\//, '')}:${frame.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  console.log('  inclusive:');
  for (const [fn, us] of [...inclusive].sort((a, b) => b[1] - a[1])) console.log(`  ${pct(us)}  ${fn}`);
}
