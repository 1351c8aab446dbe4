/**
 * Reads of BullMQ's Redis layout, for the reconciler's bulk questions, and the keys Tickwork keeps
 * beside BullMQ's under the same prefix. The layout read is BullMQ 6.7's:
 * - `<prefix>:<queue>:repeat`, a sorted set: each job scheduler's id, scored by its next occurrence
 *   (epoch ms);
 * - `<prefix>:<queue>:<jobId>`, a hash per job, whose `timestamp` (created), `processedOn` and
 *   `finishedOn` fields are epoch ms.
 * `test/layout.test.ts` checks every read against BullMQ's public API, so an upgrade that moves
 * any of it fails there. Read directly only where the public call costs far more per pass:
 * `getJobSchedulers` reads and parses every scheduler's hash (an HGETALL and two JSON parses each,
 * 100,000 at a time) where a page of the sorted set answers; `getJobScheduler` runs a script per
 * id that returns the whole hash; `getJob` returns and parses a job's whole hash (data, options)
 * where three fields answer, and `getJobState` scans the wait and active lists for each id.
 */
import type { Queue } from 'bullmq';
import type { RedisClient } from './connection.ts';

/** A BullMQ queue (its keys) and the ioredis connection it runs on (`FireQueue` is one). */
export interface RedisQueue {
  readonly queue: Pick<Queue, 'toKey'>;
  readonly redis: RedisClient;
}

/** Every scheduler of the queue with its next occurrence, `pageSize` at a time, in id order of the set. */
export async function* schedulerPages(
  { queue, redis }: RedisQueue,
  pageSize = 10_000,
): AsyncGenerator<Array<{ id: string; next: number }>> {
  const key = queue.toKey('repeat');
  for (let start = 0; ; start += pageSize) {
    const answer = (await redis.zrange(key, start, String(start + pageSize - 1), 'WITHSCORES')) as unknown[];
    // RESP2 answers a flat [member, score, …]; RESP3 may answer [[member, score], …].
    const pairs = Array.isArray(answer[0])
      ? (answer as Array<[string, string]>)
      : Array.from({ length: answer.length / 2 }, (_, i) => [answer[2 * i], answer[2 * i + 1]] as [string, string]);
    const page = pairs.map(([id, score]) => ({ id: String(id), next: Number(score) }));
    if (page.length > 0) yield page;
    if (page.length < pageSize) return;
  }
}

/**
 * Every scheduler id of the queue, about `count` at a time (ZSCAN): a walk that holds one page,
 * never the whole set, and that meets every scheduler present from start to end at least once
 * (one may come twice, or one added meanwhile not at all).
 */
export async function* schedulerIdScan({ queue, redis }: RedisQueue, count = 1_000): AsyncGenerator<string[]> {
  const key = queue.toKey('repeat');
  let cursor = '0';
  do {
    const [next, flat] = (await redis.zscan(key, cursor, 'COUNT', count)) as [string, string[]];
    cursor = next;
    const ids: string[] = [];
    for (let i = 0; i < flat.length; i += 2) ids.push(String(flat[i]));
    if (ids.length > 0) yield ids;
  } while (cursor !== '0');
}

/** Each scheduler's next occurrence as Redis holds it now (undefined: no such scheduler), in one round trip. */
export async function schedulerNextsOf(
  { queue, redis }: RedisQueue,
  ids: string[],
): Promise<Array<number | undefined>> {
  if (ids.length === 0) return [];
  const key = queue.toKey('repeat');
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.zscore(key, id);
  const results = (await pipeline.exec()) ?? [];
  return ids.map((_, i) => {
    const score = results[i]?.[1];
    return score === null || score === undefined ? undefined : Number(score);
  });
}

/**
 * When the earliest delayed job of the queue falls due (epoch ms; undefined: none is delayed). The
 * `delayed` sorted set scores each job by its due instant × 4096 plus a counter of BullMQ's own
 * (`getDelayedScore.lua`), so the instant is the score's integer part over 4096.
 */
export async function nextDelayedAt({ queue, redis }: RedisQueue): Promise<number | undefined> {
  const answer = (await redis.zrange(queue.toKey('delayed'), '0', '0', 'WITHSCORES')) as unknown[];
  const score = Array.isArray(answer[0]) ? (answer[0] as unknown[])[1] : answer[1];
  return score === undefined ? undefined : Math.floor(Number(score) / 0x1000);
}

/** When a BullMQ job was created, started and finished (epoch ms; undefined: not yet). */
export interface JobTimes {
  createdAt: number;
  processedOn: number | undefined;
  finishedOn: number | undefined;
}

/** The times of each job (undefined: Redis has no such job), in one round trip. */
export async function jobTimesOf({ queue, redis }: RedisQueue, ids: string[]): Promise<Array<JobTimes | undefined>> {
  if (ids.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hmget(queue.toKey(id), 'timestamp', 'processedOn', 'finishedOn');
  const results = (await pipeline.exec()) ?? [];
  const time = (value: string | null | undefined) =>
    value === null || value === undefined ? undefined : Number(value);
  return ids.map((_, i) => {
    const [timestamp, processedOn, finishedOn] = (results[i]?.[1] as Array<string | null> | undefined) ?? [];
    if (timestamp === null || timestamp === undefined) return undefined;
    return { createdAt: Number(timestamp), processedOn: time(processedOn), finishedOn: time(finishedOn) };
  });
}

const RELEASE_ATTEMPTS = 20;
const RELEASE_RETRY_MS = 500;

/**
 * A fleet-wide lock of Tickwork's own beside the queue (one reconcile pass at a time): taken when
 * free, for `ms` at most should its holder die. Returns its release, or undefined when held.
 */
export async function takeLock(
  { queue, redis }: RedisQueue,
  name: string,
  ms: number,
): Promise<(() => Promise<void>) | undefined> {
  const key = queue.toKey(`tickwork:${name}-lock`);
  const token = `${process.pid}:${Math.random().toString(36).slice(2)}`;
  if ((await redis.set(key, token, 'PX', ms, 'NX')) !== 'OK') return undefined;
  // Release only our own lock: it may have expired and been taken by another holder. A release
  // that meets Redis away (a failover moving the lock's slot) is tried again for a few seconds:
  // a lock left behind would hold every pass off for `ms`.
  return async () => {
    for (let attempt = 0; attempt < RELEASE_ATTEMPTS; attempt++) {
      try {
        await redis.eval(
          "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
          1,
          key,
          token,
        );
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, RELEASE_RETRY_MS));
      }
    }
  };
}

/**
 * A small hash of Tickwork's own beside the queue (the reconciler's marks: when it last swept,
 * when its last pass began). No expiry: its absence means Redis lost its data (or never had it).
 */
export function stateHash({ queue, redis }: RedisQueue, name: string) {
  const key = queue.toKey(`tickwork:${name}`);
  return {
    read: async (): Promise<Record<string, string> | undefined> => {
      const fields = await redis.hgetall(key);
      return Object.keys(fields).length === 0 ? undefined : fields;
    },
    write: async (fields: Record<string, string | number>): Promise<void> => {
      await redis.hset(key, fields);
    },
  };
}

/** A set of ids Tickwork keeps beside the queue from one pass to the next (the reconciler's suspects). */
export function idSet({ queue, redis }: RedisQueue, name: string) {
  const key = queue.toKey(`tickwork:${name}`);
  return {
    read: async (): Promise<Set<string>> => new Set(await redis.smembers(key)),
    /** Replaces the set; it expires `ttlS` after the last write. */
    async replace(ids: string[], ttlS: number): Promise<void> {
      const transaction = redis.multi().del(key);
      if (ids.length > 0) transaction.sadd(key, ...ids).expire(key, ttlS);
      await transaction.exec();
    },
  };
}
