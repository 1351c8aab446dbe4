/**
 * Fleet-wide housekeeping as BullMQ job schedulers on the `maintenance` queue: each task is a
 * scheduler of its own, so exactly one worker of the fleet runs each pass (BullMQ's locking, no
 * leader election). Every worker re-registers the schedulers at start and once a minute; the
 * upsert is idempotent, so a Redis that lost its data heals itself.
 */
import type { Job as BullJob } from 'bullmq';
import type { Logger } from 'pino';
import { MAINTENANCE_QUEUE, type RedisConnections } from '@tickwork/queue';

/** One housekeeping task: how often it runs and what one pass does. */
export interface MaintenanceTask {
  /** The scheduler id and the BullMQ job name. */
  name: string;
  everyMs: number;
  run(job: BullJob, logger: Logger): Promise<unknown>;
}

export interface MaintenanceOptions {
  /** The process's connections: the queue and its worker are built on them. */
  redis: RedisConnections;
  /** The queue's name (`maintenanceQueueNameOf`). @defaultValue `maintenance` */
  queueName?: string;
  logger: Logger;
  tasks: MaintenanceTask[];
  /** How often each worker re-registers the schedulers. @defaultValue 60000 */
  refreshMs?: number;
}

export interface Maintenance {
  /** Registers every task's scheduler now (idempotent). */
  register(): Promise<void>;
  close(): Promise<void>;
}

export async function startMaintenance(options: MaintenanceOptions): Promise<Maintenance> {
  const name = options.queueName ?? MAINTENANCE_QUEUE;
  const queue = options.redis.queue(name);
  queue.on('error', (error) => options.logger.warn({ err: error }, 'maintenance queue error'));
  const byName = new Map(options.tasks.map((task) => [task.name, task]));
  const worker = options.redis.worker(
    name,
    async (job) => {
      const task = byName.get(job.name);
      if (!task) return { skipped: `no task ${job.name} in this worker` };
      return task.run(job, options.logger.child({ task: task.name }));
    },
    { concurrency: Math.max(1, options.tasks.length), lockDuration: 60_000 },
  );
  worker.on('error', (error) => options.logger.warn({ err: error }, 'maintenance worker error'));
  worker.on('failed', (job, error) => options.logger.error({ err: error, task: job?.name }, 'maintenance task failed'));

  const register = async () => {
    for (const task of options.tasks) {
      await queue.upsertJobScheduler(
        task.name,
        { every: task.everyMs },
        { name: task.name, data: {}, opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } } },
      );
    }
  };
  await register().catch((error: unknown) =>
    options.logger.warn({ err: error }, 'could not register maintenance tasks yet'),
  );
  const refresh = setInterval(() => {
    register().catch((error: unknown) =>
      options.logger.warn({ err: error }, 'could not re-register maintenance tasks'),
    );
  }, options.refreshMs ?? 60_000);
  refresh.unref();

  return {
    register,
    async close() {
      clearInterval(refresh);
      await worker.close();
      await queue.close();
    },
  };
}
