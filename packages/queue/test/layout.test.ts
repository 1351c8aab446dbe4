/**
 * The reads of BullMQ's Redis layout (`layout.ts`) against BullMQ's own public answers, on the
 * shared Redis under a prefix of this file's own: when a BullMQ upgrade moves a key or a field,
 * these fail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Worker } from 'bullmq';
import { deletePrefix, testBaseUrls, testPrefix } from '@tickwork/testkit';
import { schedulerIdOf, schedulerOccurrenceIdOf } from '../src/catalog.ts';
import { openRedis } from '../src/connection.ts';
import { FireQueue } from '../src/fire-queue.ts';
import {
  idSet,
  jobTimesOf,
  nextDelayedAt,
  schedulerIdScan,
  schedulerNextsOf,
  schedulerPages,
  takeLock,
} from '../src/layout.ts';

const prefix = testPrefix();
const redisUrl = testBaseUrls().redisUrl;
const connection = openRedis(redisUrl, 'worker', 'layout-test');
let fireQueue: FireQueue;
const jobIds = [
  '0190a6a4-0000-7000-8000-000000000001',
  '0190a6a4-0000-7000-8000-000000000002',
  '0190a6a4-0000-7000-8000-000000000003',
];
const schedulers = jobIds.map((id) => schedulerIdOf(id, 1));

beforeAll(async () => {
  fireQueue = new FireQueue({ connection, prefix });
  const start = Date.now() + 3_600_000;
  for (const [i, id] of schedulers.entries()) {
    await fireQueue.queue.upsertJobScheduler(
      id,
      { every: 60_000, startDate: start + i * 1_000 },
      {
        name: 'fire',
        data: { jobId: jobIds[i]!, version: 1 },
      },
    );
  }
});
afterAll(async () => {
  await fireQueue?.close();
  await deletePrefix(redisUrl, prefix);
  connection.disconnect();
});

describe('BullMQ layout reads', () => {
  it('pages through every scheduler with the next instant BullMQ gives, its occurrence with the predicted id', async () => {
    const pages = [];
    for await (const page of schedulerPages(fireQueue, 2)) pages.push(page);
    expect(pages.map((page) => page.length)).toEqual([2, 1]);
    const read = pages.flat().sort((a, b) => a.id.localeCompare(b.id));
    const publicAnswer = (await fireQueue.queue.getJobSchedulers(0, -1, true))
      .map((s) => ({ id: s.key, next: s.next }))
      .sort((a, b) => a.id.localeCompare(b.id));
    expect(read).toEqual(publicAnswer);
    for (const { id, next } of read) {
      const occurrence = await fireQueue.queue.getJob(schedulerOccurrenceIdOf(id, next));
      expect(occurrence?.data).toEqual({ jobId: jobIds[schedulers.indexOf(id)], version: 1 });
      expect(await occurrence?.getState()).toBe('delayed');
    }
  });

  it('walks every scheduler id with ZSCAN, a page at a time', async () => {
    const seen = new Set<string>();
    for await (const page of schedulerIdScan(fireQueue, 1)) for (const id of page) seen.add(id);
    expect([...seen].sort()).toEqual([...schedulers].sort());
  });

  it('reads when the earliest delayed job falls due as BullMQ’s Job says', async () => {
    const earliest = (await fireQueue.queue.getJobs(['delayed']))
      .map((job) => job.timestamp + job.delay)
      .sort((a, b) => a - b)[0];
    expect(earliest).toBeDefined();
    expect(await nextDelayedAt(fireQueue)).toBe(earliest);
    const sooner = await fireQueue.queue.add('fire', { jobId: jobIds[0]!, version: 1 }, { delay: 60_000 });
    expect(await nextDelayedAt(fireQueue)).toBe(sooner.timestamp + 60_000);
    await sooner.remove();
  });

  it('reads each scheduler’s next instant as BullMQ does, and none for an unknown one', async () => {
    const ids = [...schedulers, schedulerIdOf('0190a6a4-0000-7000-8000-00000000dead', 1)];
    const nexts = await schedulerNextsOf(fireQueue, ids);
    const publicAnswer = await Promise.all(ids.map(async (id) => (await fireQueue.queue.getJobScheduler(id))?.next));
    expect(nexts).toEqual(publicAnswer);
    expect(nexts.at(-1)).toBeUndefined();
    expect(await schedulerNextsOf(fireQueue, [])).toEqual([]);
  });

  it('reads when a job was created, started and finished as BullMQ’s Job does', async () => {
    const [first] = await schedulerNextsOf(fireQueue, [schedulers[0]!]);
    const pendingId = schedulerOccurrenceIdOf(schedulers[0]!, first!);
    await fireQueue.queue.add('fire', { jobId: jobIds[0]!, version: 1 }, { jobId: 'plain:one:now' });
    const worker = new Worker('fire', async () => 'done', { connection, prefix, autorun: false });
    const finished = new Promise<void>((resolve) => worker.on('completed', () => resolve()));
    void worker.run();
    await finished;
    await worker.close();

    const ids = [pendingId, 'plain:one:now', 'plain:never:made'];
    const times = await jobTimesOf(fireQueue, ids);
    const pending = await fireQueue.queue.getJob(pendingId);
    expect(times[0]).toEqual({ createdAt: pending!.timestamp, processedOn: undefined, finishedOn: undefined });
    const done = await fireQueue.queue.getJob('plain:one:now');
    expect(done?.processedOn).toBeGreaterThan(0);
    expect(times[1]).toEqual({
      createdAt: done!.timestamp,
      processedOn: done!.processedOn,
      finishedOn: done!.finishedOn,
    });
    expect(times[2]).toBeUndefined();
  });
});

describe('Tickwork’s own keys beside the queue', () => {
  it('a lock is taken once until released, and released only by its holder', async () => {
    const release = await takeLock(fireQueue, 'test', 60_000);
    expect(release).toBeDefined();
    expect(await takeLock(fireQueue, 'test', 60_000)).toBeUndefined();
    await release!();
    const again = await takeLock(fireQueue, 'test', 60_000);
    expect(again).toBeDefined();
    await release!();
    expect(await takeLock(fireQueue, 'test', 60_000)).toBeUndefined();
    await again!();
  });

  it('an id set is replaced whole, and emptied by an empty replacement', async () => {
    const set = idSet(fireQueue, 'test-ids');
    await set.replace(['a', 'b'], 60);
    expect([...(await set.read())].sort()).toEqual(['a', 'b']);
    expect(await connection.ttl(fireQueue.queue.toKey('tickwork:test-ids'))).toBeGreaterThan(0);
    await set.replace(['c'], 60);
    expect([...(await set.read())]).toEqual(['c']);
    await set.replace([], 60);
    expect((await set.read()).size).toBe(0);
  });
});
