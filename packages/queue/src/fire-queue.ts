import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { TickworkError, type Job, withTimeout } from '@tickwork/core';
import {
  FIRE_QUEUE,
  cronRepeatStrategy,
  onceJobIdOf,
  schedulerIdOf,
  registrationOf,
  type FireJobData,
  type Registration,
} from './catalog.ts';
import { closeRedis, openRedis } from './connection.ts';
import type { RedisQueue } from './layout.ts';

/**
 * Options of every occurrence. Retries are ours: the worker decides from the job's policy and
 * BullMQ re-runs the same BullMQ job (same id, so the same run and `webhook-id`), with the delay
 * the worker computed (the `tickwork` backoff strategy reads it off the error).
 *
 * Only what BullMQ cannot take from the Worker belongs here: Redis keeps these options twice per
 * schedule (the scheduler's template and its pending occurrence). Kept to 45 bytes of JSON, the
 * template stays under Redis's `hash-max-listpack-value` (64), so the scheduler's hash is a
 * compact listpack rather than a hashtable (312 B instead of 744 B at 100,000 schedules).
 */
export const OCCURRENCE_OPTIONS: JobsOptions = {
  attempts: 50,
  backoff: { type: 'tickwork' },
};

/**
 * How long finished occurrences stay in Redis (Bull Board shows them; Postgres keeps the runs).
 * Set on the Worker, which applies them to every job it completes or fails whose own options do
 * not say otherwise, rather than stored in each occurrence's options.
 */
export const FINISHED_RETENTION = {
  removeOnComplete: { age: 3_600, count: 1_000 },
  removeOnFail: { age: 7 * 86_400, count: 10_000 },
} as const satisfies Pick<JobsOptions, 'removeOnComplete' | 'removeOnFail'>;

export type FireQueueOptions = {
  prefix: string;
  /** How long a Redis call may take before it fails as `unavailable`. @defaultValue 2000 */
  timeoutMs?: number;
} & (
  | {
      /** A fail-fast connection of the queue's own is opened to this Redis (and closed with it). */
      redisUrl: string;
    }
  | {
      /** A connection to share (from {@link RedisConnections}); its owner closes it. */
      connection: Redis;
    }
);

/**
 * A handle on the `fire` queue for everything but consuming it: registers and removes jobs'
 * schedules, queues runs, and (through `layout.ts`) reads what Redis holds. The api makes one on a
 * fail-fast connection of its own; the worker makes its handles on its shared connections.
 * Every call here fails as `unavailable` (503) once Redis has not answered for `timeoutMs`.
 */
export class FireQueue implements RedisQueue {
  readonly queue: Queue<FireJobData>;
  /** The connection the queue runs on. */
  readonly redis: Redis;
  readonly timeoutMs: number;
  private readonly ownsConnection: boolean;

  constructor(options: FireQueueOptions) {
    this.timeoutMs = options.timeoutMs ?? 2_000;
    this.ownsConnection = 'redisUrl' in options;
    this.redis =
      'redisUrl' in options ? openRedis(options.redisUrl, 'producer', 'tickwork:fire-queue') : options.connection;
    this.queue = new Queue<FireJobData>(FIRE_QUEUE, {
      connection: this.redis,
      prefix: options.prefix,
      settings: { repeatStrategy: cronRepeatStrategy },
    });
    // Connection errors surface through the calls below (as 503); keep them off the process.
    this.queue.on('error', () => {});
  }

  private async withTimeout<T>(what: string, work: Promise<T>): Promise<T> {
    try {
      return await withTimeout(work, this.timeoutMs, what);
    } catch (error) {
      throw new TickworkError('unavailable', 'The scheduler store (Redis) is not answering; nothing was changed.', {
        cause: error,
      });
    }
  }

  /** Registers a job as it stands now; returns what was registered. */
  async register(job: Job, now = Date.now(), runCount = 0): Promise<Registration> {
    const registration = registrationOf(job, now, runCount);
    await this.withTimeout('registering the job', applyRegistration(this.queue, job, registration, now));
    return registration;
  }

  /** Removes every trace of one version of a job: its scheduler and its pending one-shot. */
  async unregister(jobId: string, version: number): Promise<void> {
    await this.withTimeout('removing the job', removeRegistration(this.queue, jobId, version));
  }

  /**
   * Hands BullMQ a run the api has recorded itself (run now, replay): a plain job, so no
   * scheduler's next occurrence moves (BullMQ's `promote()` would shift the schedule).
   */
  async enqueueRun(data: Required<FireJobData>, bullJobId: string): Promise<void> {
    await this.withTimeout('queueing the run', addOccurrence(this.queue, data, bullJobId));
  }

  async ping(): Promise<void> {
    await this.withTimeout(
      'pinging Redis',
      this.queue.waitUntilReady().then(() => this.redis.ping()),
    );
  }

  /** Closes the queue, and the connection when it is the queue's own. */
  async close(): Promise<void> {
    await this.queue.close().catch(() => {});
    if (this.ownsConnection) await closeRedis(this.redis);
  }
}

/** Adds an occurrence under its BullMQ id, due in `delayMs` (0: now). */
export async function addOccurrence(
  queue: Queue<FireJobData>,
  data: FireJobData,
  bullJobId: string,
  delayMs = 0,
): Promise<void> {
  await queue.add(FIRE_QUEUE, data, {
    ...OCCURRENCE_OPTIONS,
    jobId: bullJobId,
    ...(delayMs > 0 ? { delay: delayMs } : {}),
  });
}

/**
 * Closes a BullMQ queue. With Redis away QUIT cannot be sent on a fail-fast connection and
 * BullMQ rethrows (and its disconnect() then never settles): drop the socket instead, so a
 * process can shut down cleanly during a Redis outage.
 */
export async function closeQueue(queue: Queue): Promise<void> {
  try {
    await queue.close();
  } catch {
    (await queue.getBackend().client).disconnect();
  }
}

/** Writes a registration to BullMQ. Shared by the api and the reconciler. */
export async function applyRegistration(
  queue: Queue,
  job: Job,
  registration: Registration,
  now = Date.now(),
): Promise<void> {
  const data: FireJobData = { jobId: job.id, version: job.version };
  switch (registration.kind) {
    case 'none':
      return;
    case 'delayed':
      await addOccurrence(queue, data, registration.bullJobId, registration.runAt - now);
      return;
    case 'scheduler':
      await queue.upsertJobScheduler(registration.schedulerId, registration.repeat, {
        name: FIRE_QUEUE,
        data,
        opts: OCCURRENCE_OPTIONS,
      });
  }
}

export async function removeRegistration(queue: Queue, jobId: string, version: number): Promise<void> {
  await queue.removeJobScheduler(schedulerIdOf(jobId, version));
  const once = await queue.getJob(onceJobIdOf(jobId, version));
  if (once && ((await once.isDelayed()) || (await once.isWaiting()))) await once.remove();
}
