/**
 * Wakes Redis at the instant the next occurrence falls due.
 *
 * A BullMQ Worker with nothing ready waits in `BZPOPMIN` on its queue's marker, with a timeout
 * that ends when the earliest delayed job falls due; when it ends, BullMQ promotes the due jobs
 * and takes one. But Redis times out a blocked client only when its event loop wakes, and an idle
 * Redis wakes `hz` times a second: at the default `hz 10`, up to 100 ms after the instant
 * (bullmq #3144). Any command wakes the loop, and Redis then times out every blocked client whose
 * deadline passed before it sleeps again. So the worker reads when the earliest delayed job falls
 * due (one `ZRANGE` of BullMQ's `delayed` set, `nextDelayedAt`), sleeps until just after that
 * instant, and sends a `PING` (on a Redis Cluster, a `PING` goes to any node: an `EXISTS` of the
 * queue's `delayed` key instead, which goes to the master holding the queue). Nothing of BullMQ's is written or changed; the Worker's own
 * options stay as they are.
 *
 * Cost: one read every 100 ms while nothing is due soon, and a read and a `PING` per distinct
 * due instant while occurrences keep falling due (at most one every 5 ms). `TICKWORK_WAKE=off`
 * turns the nudges off (for a side-by-side measurement). The worker starts one per fire queue it consumes.
 *
 * The same reads watch the Worker: when the queue's earliest delayed job stays overdue by the
 * same instant for `stuckAfterMs` while the Worker has a free slot, nothing is taking the queue's
 * jobs (BullMQ promotes due delayed jobs each time it fetches), and `onStuck` is called; the
 * worker then replaces that queue's BullMQ Worker. Seen on a Redis Cluster after a master failed
 * over: a Worker whose blocking connection was in flight towards the dead master never fetched
 * again, while the Workers of the other shards did. Called again after each further period
 * (doubling up to {@link MAX_STUCK_AFTER_MS}) while it lasts.
 */
import { isCluster, nextDelayedAt, type RedisClient, type RedisQueue } from '@tickwork/queue';

/** How long after a due instant the PING goes: BullMQ's deadline is set when its command reaches Redis. */
const AFTER_DUE_MS = 2;
/** The longest sleep between reads: a job added meanwhile that falls due sooner is seen this late at most. */
const MAX_SLEEP_MS = 100;
/**
 * The shortest sleep between two reads: under load, when a due instant comes every millisecond,
 * the waker costs at most 200 reads and PINGs a second, and a PING comes at most this late.
 */
const MIN_SLEEP_MS = 5;

/** The default of `stuckAfterMs`: BullMQ promotes a due job within milliseconds; its own block timeouts are ≤ 10 s. */
export const STUCK_AFTER_MS = 15_000;
/** The longest wait between two `onStuck` calls for a queue that stays stuck. */
export const MAX_STUCK_AFTER_MS = 120_000;

export interface Waker {
  stop(): void;
}

export function startWaker(options: {
  /** One fire queue's keys and a connection to read them on. */
  queue: RedisQueue;
  /** Where the PING goes (any connection wakes Redis; not the Worker's blocking one). */
  redis: RedisClient;
  /** False while every slot of the Worker is busy: BullMQ is not blocking then, and a PING would not help. */
  hasFreeSlot: () => boolean;
  /** False: only watch (no wake-up PINGs). Default true. */
  nudge?: boolean;
  /** Called when the earliest delayed job stayed overdue with a free slot for `stuckAfterMs`. */
  onStuck?: (overdueMs: number) => void;
  stuckAfterMs?: number;
}): Waker {
  const stuckAfterMs = options.stuckAfterMs ?? STUCK_AFTER_MS;
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
  let nudged: number | undefined;
  let idleSleep = MIN_SLEEP_MS;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    });
  const delayedKey = options.queue.queue.toKey('delayed');
  const wake = async () => {
    if (isCluster(options.redis)) await options.redis.exists(delayedKey);
    else await options.redis.ping();
  };
  const loop = async () => {
    while (!stopped) {
      try {
        const next = await nextDelayedAt(options.queue);
        const now = Date.now();
        watch(next, now);
        if (next !== undefined && next + AFTER_DUE_MS <= now) {
          // Due: once per instant, while the Worker may be blocked waiting for it.
          if (nudged !== next && options.hasFreeSlot()) {
            nudged = next;
            idleSleep = MIN_SLEEP_MS;
            if (options.nudge !== false) await wake();
          } else {
            // Still due after the nudge: the Worker is busy or promoting; look again, less often.
            idleSleep = Math.min(idleSleep * 2, MAX_SLEEP_MS);
          }
          await sleep(idleSleep);
          continue;
        }
        idleSleep = MIN_SLEEP_MS;
        const untilDue = next === undefined ? MAX_SLEEP_MS : next + AFTER_DUE_MS - now;
        await sleep(Math.max(MIN_SLEEP_MS, Math.min(MAX_SLEEP_MS, untilDue)));
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
