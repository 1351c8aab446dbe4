/**
 * What the version history costs the writes that record it (issue 16 §2), on the shared Postgres,
 * side by side in one run: a create as one INSERT (`insertJob`, before the history) against a
 * create with its entry in the same statement (`insertJobRecorded`), and a run now as one INSERT
 * (`insertRequestedRun`) against the same with its entry in the same statement (a stamp given):
 *   node bench/src/history-writes.ts [--ops 2000 --concurrency 8 --rounds 3]
 * Each round runs both sides of each write back to back, the order alternating; prints each
 * side's median rate over the rounds and the median per-round ratio recorded/plain.
 */
import { parseArgs } from 'node:util';
import { buildJobSpec, uuidv7 } from '@tickwork/core';
import { insertJob, insertJobRecorded, insertRequestedRun, insertService } from '@tickwork/db';
import { createTestDatabase } from '@tickwork/testkit';

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
  },
});
const ops = Number(values.ops);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
const db = await createTestDatabase('tw_bench_history');
const service = await insertService(db.db, { id: uuidv7(), name: 'bench', signingSecret: 'x', maxJobs: 1_000_000 });
const actor = { kind: 'key' as const, id: 'bench' };
/** Sealing the target's headers, as the api does. */
const KEYS = { current: 'bench-secret-key-0123456789-0123456789' };
let names = 0;

function newJob() {
  const now = Date.now();
  const spec = buildJobSpec(
    { name: `job-${++names}`, schedule: { every: '1h' }, target: { url: 'https://example.com/hook', body: { a: 1 } } },
    { now },
  );
  return {
    ...spec,
    id: uuidv7(now),
    serviceId: service.id,
    state: 'active' as const,
    now: new Date(now),
    nextRunAt: null,
  };
}

const target = await insertJob(db.db, newJob(), KEYS);
const sides: Record<string, Record<'plain' | 'recorded', () => Promise<unknown>>> = {
  create: {
    plain: () => insertJob(db.db, newJob(), KEYS),
    recorded: () => insertJobRecorded(db.db, newJob(), { id: uuidv7(), change: 'create', actor, at: new Date() }, KEYS),
  },
  'run now': {
    plain: () =>
      insertRequestedRun(db.db, {
        id: uuidv7(),
        jobId: target.id,
        serviceId: service.id,
        jobVersion: 1,
        trigger: 'manual',
        now: Date.now(),
      }),
    recorded: () =>
      insertRequestedRun(
        db.db,
        { id: uuidv7(), jobId: target.id, serviceId: service.id, jobVersion: 1, trigger: 'manual', now: Date.now() },
        { id: uuidv7(), change: 'trigger', actor, at: new Date() },
      ),
  },
};

/** Writes per second of `ops` calls, `concurrency` in flight. */
async function rate(call: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < ops) await call();
    }),
  );
  return ops / ((performance.now() - started) / 1_000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`history-writes: ${ops} writes per side per round, ${concurrency} in flight, ${rounds} rounds`);
for (const [name, side] of Object.entries(sides)) {
  const plain: number[] = [];
  const recorded: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (['plain', 'recorded'] as const) : (['recorded', 'plain'] as const);
    const got: Record<string, number> = {};
    for (const which of order) got[which] = await rate(side[which]);
    plain.push(got.plain!);
    recorded.push(got.recorded!);
    ratios.push(got.recorded! / got.plain!);
  }
  console.log(
    `  ${name}: plain ${median(plain).toFixed(0)}/s, with its history entry ${median(recorded).toFixed(0)}/s, ` +
      `ratio ${median(ratios).toFixed(2)} (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
  );
}
await db.drop();
