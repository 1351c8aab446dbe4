/**
 * Wakes Redis at the instant the next occurrence falls due.
 *
 * A BullMQ Worker with nothing ready waits in `BZPOPMIN` on its queue's marker, with a timeout
 * that ends when the earliest delayed job falls due; when it ends, BullMQ promotes the due jobs
 * and takes one. But Redis times out a blocked client only when its event loop wakes, and an idle
 * Redis wakes `hz` times a second: at the default `hz 10`, up to 100 ms after the instant
 * (bullmq #3144). Any command wakes the loop, and Redis then times out every blocked client whose
 * deadline passed before it sleeps again. So the worker reads the due instants of the next
 * {@link HORIZON_MS} at once (one `ZRANGEBYSCORE` of BullMQ's `delayed` set), sleeps until just
 * after each, and sends a `PING` (on a Redis Cluster, a `PING` goes to any node: an `EXISTS` of the
 * queue's `delayed` key instead, which goes to the master holding the queue). Nothing of BullMQ's
 * is written or changed; the Worker's own options stay as they are.
 *
 * A `PING` goes only when it can help: the Worker has a free slot (with none, BullMQ is not
 * blocking, and the slot that frees fetches the due jobs itself) and is waiting (`isWaiting`:
 * neither taking a job nor finishing one, which fetches the next due job in the same round trip).
 * An instant passed over that way is looked at again at the next read: still the earliest delayed
 * job while the Worker waits with a free slot, it gets its `PING` then.
 *
 * Cost: one read per {@link HORIZON_MS} (fewer while every slot is busy: none then) and at most a
 * `PING` per distinct due instant. `TICKWORK_WAKE=off` turns the nudges off (for a side-by-side
 * measurement). The worker starts one per fire queue it consumes.
 *
 * The same reads watch the Worker: when the queue's earliest delayed job stays overdue by the
 * same instant for `stuckAfterMs` while the Worker has a free slot, nothing is taking the queue's
 * jobs (BullMQ promotes due delayed jobs each time it fetches), and `onStuck` is called; the
 * worker then replaces that queue's BullMQ Worker. Seen on a Redis Cluster after a master failed
 * over: a Worker whose blocking connection was in flight towards the dead master never fetched
 * again, while the Workers of the other shards did. Called again after each further period
 * (doubling up to {@link MAX_STUCK_AFTER_MS}) while it lasts.
 */
import { isCluster, type RedisClient, type RedisQueue } from '@tickwork/queue';

/** How long after a due instant the PING goes: BullMQ's deadline is set when its command reaches Redis. */
const AFTER_DUE_MS = 2;
/**
 * How far ahead one read looks, and the longest sleep between reads: a job added meanwhile that
 * falls due sooner is seen this late at most (a scheduler's next occurrence is ≥ 1 s away).
 */
const HORIZON_MS = 100;
/** The most instants one read takes (the rest of the horizon is read when these are through). */
const READ_LIMIT = 128;
/** The first wait before looking again at an earliest instant left due (doubling up to the horizon). */
const RECHECK_MS = 5;
/** How often the busy state is looked at (in memory, no Redis) while every slot is taken. */
const BUSY_POLL_MS = 5;

/** The default of `stuckAfterMs`: BullMQ promotes a due job within milliseconds; its own block timeouts are ≤ 10 s. */
export const STUCK_AFTER_MS = 15_000;
/** The longest wait between two `onStuck` calls for a queue that stays stuck. */
export const MAX_STUCK_AFTER_MS = 120_000;

export interface Waker {
  stop(): void;
}

/**
 * The due instants (epoch ms, ascending, distinct) of the queue's delayed jobs up to `until`, at
 * most `limit` jobs' worth. BullMQ scores each delayed job by its due instant × 4096 plus a
 * counter of its own (`getDelayedScore.lua`), so an instant is a score's integer part over 4096.
 */
async function dueInstants({ queue, redis }: RedisQueue, until: number, limit: number): Promise<number[]> {
  const answer = (await redis.zrangebyscore(
    queue.toKey('delayed'),
    '-inf',
    `(${(until + 1) * 0x1000}`,
    'WITHSCORES',
    'LIMIT',
    0,
    limit,
  )) as unknown[];
  const instants: number[] = [];
  // RESP2: member, score, member, score…; RESP3: [member, score] pairs.
  const pairs = Array.isArray(answer[0]);
  for (let i = pairs ? 0 : 1; i < answer.length; i += pairs ? 1 : 2) {
    const score = pairs ? (answer[i] as unknown[])[1] : answer[i];
    const at = Math.floor(Number(score) / 0x1000);
    if (instants[instants.length - 1] !== at) instants.push(at);
  }
  return instants;
}

export function startWaker(options: {
  /** One fire queue's keys and a connection to read them on. */
  queue: RedisQueue;
  /** Where the PING goes (any connection wakes Redis; not the Worker's blocking one). */
  redis: RedisClient;
  /** False while every slot of the Worker is busy: BullMQ is not blocking then, and a PING would not help. */
  hasFreeSlot: () => boolean;
  /**
   * False while the Worker is taking or finishing a job (its own fetch promotes the due jobs, and
   * it is not blocked). Default: always true (a PING at each instant with a free slot).
   */
  isWaiting?: () => boolean;
  /** False: only watch (no wake-up PINGs). Default true. */
  nudge?: boolean;
  /** Called when the earliest delayed job stayed overdue with a free slot for `stuckAfterMs`. */
  onStuck?: (overdueMs: number) => void;
  stuckAfterMs?: number;
}): Waker {
  const stuckAfterMs = options.stuckAfterMs ?? STUCK_AFTER_MS;
  const isWaiting = options.isWaiting ?? (() => true);
  // The overdue instant being watched, since when, and how long until the next onStuck call.
  let watched: number | undefined;
  let watchedSince = 0;
  let stuckWait = stuckAfterMs;
  const watch = (next: number | undefined, now: number) => {
    if (next === undefined || next + AFTER_DUE_MS > now || !options.hasFreeSlot()) {
      watched = undefined;
      stuckWait = stuckAfterMs;
      return;
    }
    if (watched !== next) {
      watched = next;
      watchedSince = now;
      return;
    }
    if (now - watchedSince < stuckWait) return;
    watchedSince = now;
    stuckWait = Math.min(stuckWait * 2, MAX_STUCK_AFTER_MS);
    options.onStuck?.(now - next);
  };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    });
  const delayedKey = options.queue.queue.toKey('delayed');
  const wake = async () => {
    if (options.nudge === false) return;
    if (isCluster(options.redis)) await options.redis.exists(delayedKey);
    else await options.redis.ping();
  };
  // The instant last nudged, and the wait before looking again at an earliest instant left due.
  let nudged: number | undefined;
  let overdueWait = RECHECK_MS;
  const loop = async () => {
    while (!stopped) {
      try {
        if (!options.hasFreeSlot()) {
          // Every slot busy: BullMQ is not blocked, and the slot that frees fetches what is due.
          watched = undefined;
          stuckWait = stuckAfterMs;
          await sleep(BUSY_POLL_MS);
          continue;
        }
        const horizon = Date.now() + HORIZON_MS;
        const instants = await dueInstants(options.queue, horizon, READ_LIMIT);
        const now = Date.now();
        const earliest = instants[0];
        watch(earliest, now);
        let i = 0;
        const overdue = earliest !== undefined && earliest + AFTER_DUE_MS <= now;
        if (overdue) {
          // Already due when read: passed over while the Worker was busy (a PING now, once), or
          // nudged before and not taken yet (the Worker is promoting it, or stuck: the watch above).
          while (i < instants.length && instants[i]! + AFTER_DUE_MS <= now) i++;
          if (nudged !== earliest && options.hasFreeSlot() && isWaiting()) {
            nudged = earliest;
            await wake();
          }
        }
        const ahead = i < instants.length;
        // The instants still ahead, each in turn.
        for (; i < instants.length && !stopped; i++) {
          const wait = instants[i]! + AFTER_DUE_MS - Date.now();
          if (wait > 0) await sleep(wait);
          if (stopped) return;
          // Coalesce the instants that fell due meanwhile: one PING wakes the Worker for all.
          while (i + 1 < instants.length && instants[i + 1]! + AFTER_DUE_MS <= Date.now()) i++;
          if (options.hasFreeSlot() && isWaiting()) {
            nudged = instants[i]!;
            await wake();
          }
        }
        if (stopped) return;
        if (overdue && !ahead) {
          // Only an instant left due: look again, less and less often while it stays.
          await sleep(overdueWait);
          overdueWait = Math.min(overdueWait * 2, HORIZON_MS);
          continue;
        }
        overdueWait = RECHECK_MS;
        // Through the instants read: the next read at the horizon (at once when the read was full).
        const rest = (instants.length >= READ_LIMIT ? instants[instants.length - 1]! : horizon) - Date.now();
        if (rest > 0) await sleep(rest);
      } catch {
        // Redis away: the Worker has its own reconnection; look again later (and stop watching:
        // a Worker cannot fetch while Redis is away).
        watched = undefined;
        await sleep(1_000);
      }
    }
  };
  void loop();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
