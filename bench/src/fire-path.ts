/**
 * `npm run bench -- …` is end to end and, on a shared 2-core box, its drains swing ±40% round to
 * round. This one times only the worker's per-occurrence path (`fireOccurrence`: Postgres work,
 * the signed callback to a local sink, the outcome) of several checkouts of the code in one
 * process, interleaved block by block on the same database, so load drifts cancel out:
 *   node bench/src/fire-path.ts base=/tmp/base new=. [--blocks 30 --block 100 --concurrency 10]
 * Prints occurrences/s of each checkout per block and the median per-block ratio to the first.
 */
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { buildJobSpec, encryptSecret, uuidv7 } from '@tickwork/core';
import { insertJob, insertService } from '@tickwork/db';
import { createTestDatabase, deletePrefix, startSink } from '@tickwork/testkit';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    blocks: { type: 'string', default: '30' },
    block: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '10' },
  },
});
const checkouts = positionals.map((p) => ({
  name: p.slice(0, p.indexOf('=')),
  dir: resolve(p.slice(p.indexOf('=') + 1)),
}));
const blocks = Number(values.blocks);
const perBlock = Number(values.block);
const concurrency = Number(values.concurrency);

// A silent logger (pino is not a bench dependency; the bench runs the worker at warn anyway).
const silent: Record<string, unknown> = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  child: () => silent,
  isLevelEnabled: () => false,
};
const secretKey = 'bench-secret-key-0123456789-0123456789';
const db = await createTestDatabase('tw_bench_firepath');
const sink = await startSink();
// The worker's queue, as in production: with it, `fireOccurrence` also makes its skipped-slot check.
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `{tw-bench-firepath-${process.pid}}`;
const queue = new Queue('fire', { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix });
interface Variant {
  name: string;
  dir: string;
  fire: (ctx: unknown, job: unknown) => Promise<{ outcome: string }>;
  ctx: unknown;
  /** The checkout's own database handle: its pg driver is part of what is compared. */
  database: { close(): Promise<void> };
  perSec: number[];
}
const variants: Variant[] = [];
for (const c of checkouts) {
  // The fire path is apps/worker/src/fire/ since it was split by concern; one file before.
  const split = `${c.dir}/apps/worker/src/fire/index.ts`;
  const fire = await import(existsSync(split) ? split : `${c.dir}/apps/worker/src/fire.ts`);
  const deliver = await import(`${c.dir}/apps/worker/src/deliver.ts`);
  const { createDatabase } = await import(`${c.dir}/packages/db/src/database.ts`);
  // Sized as the worker sizes its pool (concurrency + 2).
  const database = createDatabase({ url: db.url, poolMax: concurrency + 2 });
  const policy = { allowPrivate: true, allowedHosts: [] };
  const ctx = {
    db: database.db,
    logger: silent,
    workerId: `bench-${c.name}`,
    secretKey,
    // Checkouts since the key ring (SECRET_KEY_PREVIOUS) read this one; older ones the one above.
    secretKeys: { current: secretKey },
    policy,
    dispatchers: deliver.createDispatchers(policy),
    queue,
  };
  variants.push({ ...c, fire: fire.fireOccurrence, ctx, database, perSec: [] });
}
const service = await insertService(db.db, {
  id: uuidv7(),
  name: 'bench',
  signingSecret: encryptSecret('whsec_bench_0123456789abcdef', secretKey),
});
const jobs: string[] = [];
for (let i = 0; i < concurrency * 4; i++) {
  const spec = buildJobSpec(
    { name: `j${i}`, schedule: { every: '1h' }, target: { url: `${sink.url}/hook` } },
    { now: Date.now() },
  );
  jobs.push(
    (
      await insertJob(
        db.db,
        {
          ...spec,
          id: uuidv7(),
          serviceId: service.id,
          state: 'active',
          now: new Date(),
          nextRunAt: null,
        },
        { current: secretKey },
      )
    ).id,
  );
}

let instant = Date.now();
async function shot(v: Variant, count: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, lane) => {
      for (let i = next++; i < count; i = next++) {
        const jobId = jobs[(lane + i * concurrency) % jobs.length]!;
        const at = ++instant;
        const bullJob = {
          id: `repeat:${jobId}:${at}`,
          data: { jobId, version: 1 },
          timestamp: at,
          opts: {},
          attemptsMade: 0,
        };
        const result = await v.fire(v.ctx, bullJob);
        if (result.outcome !== 'delivered') throw new Error(`${v.name}: ${JSON.stringify(result)}`);
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

for (const v of variants) await shot(v, perBlock); // warm-up
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (let b = 0; b < blocks; b++) {
  const order = variants.map((_, i) => variants[(i + b) % variants.length]!);
  for (const v of order) v.perSec.push(await shot(v, perBlock));
}
const first = variants[0]!;
for (const v of variants) {
  const ratios = v.perSec.map((x, i) => x / first.perSec[i]!);
  console.log(
    `${v.name.padEnd(6)} median ${median(v.perSec).toFixed(0)}/s  ratio to ${first.name} ${median(ratios).toFixed(3)} (blocks ${v.perSec.map((x) => x.toFixed(0)).join(' ')})`,
  );
}
console.log(`sink received ${sink.received.length}`);
// How Postgres plans the prepared statements of the path: custom plans are planned again at every
// execution, generic ones once per connection (pg_prepared_statements, per connection: sampled on a few).
for (const v of variants) {
  const seen = new Map<string, { generic: number; custom: number }>();
  for (let i = 0; i < concurrency; i++) {
    const { rows } = await sql`select left(regexp_replace(statement, '[[:space:]]+', ' ', 'g'), 70) as statement,
      generic_plans::int as generic, custom_plans::int as custom from pg_prepared_statements`.execute(
      (v.ctx as { db: never }).db,
    );
    for (const r of rows as Array<{ statement: string; generic: number; custom: number }>) {
      const was = seen.get(r.statement);
      if (!was || was.generic + was.custom < r.generic + r.custom) seen.set(r.statement, r);
    }
  }
  for (const [statement, r] of seen)
    console.log(`${v.name} plans: generic ${r.generic} custom ${r.custom}  ${statement}`);
}
await sink.close();
for (const v of variants) await v.database.close();
await queue.close();
await deletePrefix(redisUrl, prefix);
await db.drop();
process.exit(0);
