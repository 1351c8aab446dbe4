/**
 * What the reconciler's reads of BullMQ's private layout (`packages/queue/src/layout.ts`) save
 * over BullMQ's public calls for the same answers, at N schedulers on a Redis of the bench's own:
 *   node bench/src/layout-reads.ts [--schedulers 20000 --rounds 3]
 * Each round times both sides of each question back to back (order alternating); prints the
 * median time of each side and the median per-round ratio public/private.
 */
import { parseArgs } from 'node:util';
import {
  FireQueue,
  jobTimesOf,
  schedulerIdOf,
  schedulerNextsOf,
  schedulerOccurrenceIdOf,
  schedulerPages,
} from '@tickwork/queue';
import { startOwnRedis } from '@tickwork/testkit';

const { values } = parseArgs({
  options: { schedulers: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '3' } },
});
const count = Number(values.schedulers);
const rounds = Number(values.rounds);
const redis = await startOwnRedis();
const fireQueue = new FireQueue({ redisUrl: redis.url, prefix: '{twbench}', timeoutMs: 600_000 });
const hex = (i: number) => i.toString(16).padStart(12, '0');
const ids = Array.from({ length: count }, (_, i) => schedulerIdOf(`0190a6a4-0000-7000-8000-${hex(i)}`, 1));
const start = Date.now() + 3_600_000;
for (let i = 0; i < count; i += 100) {
  await Promise.all(
    ids
      .slice(i, i + 100)
      .map((id, j) =>
        fireQueue.queue.upsertJobScheduler(
          id,
          { every: 60_000, startDate: start + i + j },
          { name: 'fire', data: { jobId: id, version: 1 } },
        ),
      ),
  );
}
console.log(`layout-reads: ${count} schedulers registered`);

const pages = <T>(items: T[], size: number) =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
/** BullMQ's calls one id at a time, 50 in flight (as the reconciler writes). */
async function fifty<T>(items: string[], call: (id: string) => Promise<T>): Promise<void> {
  for (const page of pages(items, 50)) await Promise.all(page.map(call));
}
const nexts = new Map<string, number>();
for await (const page of schedulerPages(fireQueue)) for (const { id, next } of page) nexts.set(id, next);
const pending = ids.map((id) => schedulerOccurrenceIdOf(id, nexts.get(id)!));

const questions: Record<string, { private: () => Promise<unknown>; public: () => Promise<unknown> }> = {
  'every scheduler and its next': {
    private: async () => {
      for await (const _ of schedulerPages(fireQueue));
    },
    public: () => fireQueue.queue.getJobSchedulers(0, -1, true),
  },
  "each scheduler's next now": {
    private: async () => {
      for (const page of pages(ids, 1_000)) await schedulerNextsOf(fireQueue, page);
    },
    public: () => fifty(ids, (id) => fireQueue.queue.getJobScheduler(id)),
  },
  "each pending occurrence's times": {
    private: async () => {
      for (const page of pages(pending, 1_000)) await jobTimesOf(fireQueue, page);
    },
    public: () => fifty(pending, (id) => fireQueue.queue.getJob(id)),
  },
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = async (work: () => Promise<unknown>) => {
  const started = performance.now();
  await work();
  return performance.now() - started;
};
for (const [question, sides] of Object.entries(questions)) {
  const privateMs: number[] = [];
  const publicMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      privateMs.push(await time(sides.private));
      publicMs.push(await time(sides.public));
    } else {
      publicMs.push(await time(sides.public));
      privateMs.push(await time(sides.private));
    }
  }
  const ratio = median(publicMs.map((ms, i) => ms / privateMs[i]!));
  console.log(
    `${question.padEnd(34)} private ${median(privateMs).toFixed(0)} ms, public ${median(publicMs).toFixed(0)} ms: public/private ${ratio.toFixed(1)}×`,
  );
}
await fireQueue.close();
await redis.stop();
