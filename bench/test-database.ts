/**
 * What a test file's database costs the test run: created and migrated from scratch (A), or
 * copied from a template migrated once per run (B, what the vitest global set-up does since
 * December 2026). Alternating order, several rounds, medians and the ratio B/A per round.
 *
 *   node bench/test-database.ts [--rounds 6] [--per-round 8]
 *
 * Uses DATABASE_URL (default: the local Postgres): databases of its own, dropped afterwards.
 */
import { createTemplateDatabase, createTestDatabase, TEMPLATE_DATABASE_ENV, testBaseUrls } from '@tickwork/testkit';
import { describeMachine, loadNow } from './src/machine.ts';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const rounds = arg('--rounds', 6);
const perRound = arg('--per-round', 8);

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

const { databaseUrl, redisUrl } = testBaseUrls();
console.log(JSON.stringify({ machine: await describeMachine(redisUrl, databaseUrl) }));
console.log(`load before ${loadNow()}`);
const template = await createTemplateDatabase();
const all: Record<'migrate' | 'copy', number[]> = { migrate: [], copy: [] };
try {
  for (let round = 1; round <= rounds; round++) {
    const order: Array<'migrate' | 'copy'> = round % 2 ? ['migrate', 'copy'] : ['copy', 'migrate'];
    const medians: Record<string, number> = {};
    for (const mode of order) {
      if (mode === 'copy') process.env[TEMPLATE_DATABASE_ENV] = template.name;
      else delete process.env[TEMPLATE_DATABASE_ENV];
      const times: number[] = [];
      for (let i = 0; i < perRound; i++) {
        const started = performance.now();
        const db = await createTestDatabase('tw_bench_testdb');
        times.push(performance.now() - started);
        await db.drop();
      }
      all[mode].push(...times);
      medians[mode] = median(times);
    }
    console.log(
      `round ${round} (${order.join(' then ')}): migrate ${medians.migrate!.toFixed(0)} ms, ` +
        `copy ${medians.copy!.toFixed(0)} ms, copy/migrate ${(medians.copy! / medians.migrate!).toFixed(2)}`,
    );
  }
} finally {
  await template.drop();
}
const result = {
  migrateMedianMs: Math.round(median(all.migrate)),
  copyMedianMs: Math.round(median(all.copy)),
  ratio: Number((median(all.copy) / median(all.migrate)).toFixed(2)),
};
console.log(`bench: test database ${JSON.stringify(result)}`);
console.log(`load after ${loadNow()}`);
