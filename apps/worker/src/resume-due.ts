/**
 * Pause-until (POST /v1/jobs/{id}/pause with `until`): a maintenance task that resumes each paused
 * job whose `paused_until` has come. The instant lives in Postgres, so it survives any restart;
 * the task runs every second on one worker of the fleet, and a pass that ran late (every worker
 * down) resumes the job as soon as one is back.
 *
 * A resume here is the api's resume, in the same write order (rule 1 of services/jobs.ts): the new
 * version is registered in Redis before the commit that makes it active, and taken back when the
 * commit fails. It is recorded in the job's history as `resume`, made by whoever asked for the
 * pause. The job is active from `until` on, not from the moment the pass ran: its first
 * occurrence at or after `until`, when due already, is enqueued at once (the one at `until`
 * itself, typically a second late) and decided like every late occurrence (misfire policy); the
 * slots between it and the scheduler's first are recorded `missed` by whichever of the two is
 * decided second (fire/skipped-slots.ts), as after any gap of the timer.
 */
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { nextRunOf, uuidv7, type Job } from '@tickwork/core';
import {
  jobFromRow,
  WITHOUT_HEADERS,
  latestPauseActor,
  lockPauseDue,
  pausesDue,
  recordVersion,
  updateJob,
  type Database,
} from '@tickwork/db';
import { addOccurrence, catchUpJobIdOf, onceJobIdOf, type FireQueue } from '@tickwork/queue';
import type { MaintenanceTask } from './maintenance.ts';

export const RESUME_DUE_TASK = 'resume-due';
/** Jobs resumed per pass, at most; a longer backlog is taken by the next passes. */
const BATCH = 200;

export interface ResumeDueOptions {
  db: Kysely<Database>;
  fireQueue: FireQueue;
  /** @defaultValue 1000 */
  everyMs?: number;
  now?: () => number;
}

export interface ResumeDueResult {
  resumed: number;
  completed: number;
}

/** Resumes one job whose pause is due; what became of it, or undefined when it was not due (any more). */
async function resumeOne(
  options: ResumeDueOptions,
  id: string,
  now: number,
): Promise<'resumed' | 'completed' | undefined> {
  let registered: number | undefined;
  let resumed: { job: Job; first?: number } | undefined;
  try {
    await options.db.transaction().execute(async (trx) => {
      const row = await lockPauseDue(trx, id, new Date(now));
      if (!row?.paused_until) return;
      const until = row.paused_until.getTime();
      const draft: Job = {
        ...jobFromRow(row, WITHOUT_HEADERS),
        state: 'active',
        version: row.version + 1,
        updatedAt: now,
      };
      // Active from `until`: its first occurrence at or after it comes next, else it has nothing left.
      const nextRunAt = nextRunOf(draft, until - 1, row.run_count);
      const job: Job = { ...draft, state: nextRunAt === null ? 'completed' : 'active' };
      if (job.state === 'active') {
        await options.fireQueue.register(job, now, row.run_count);
        registered = job.version;
      }
      await updateJob(trx, id, {
        state: job.state,
        version: job.version,
        nextRunAt: nextRunAt === null ? null : new Date(nextRunAt),
        now: new Date(now),
        pausedUntil: null,
      });
      const actor = (await latestPauseActor(trx, id)) ?? { kind: 'admin', id: 'admin' };
      // The id under the row lock, as the api takes it: the history is in commit order.
      await recordVersion(trx, id, { id: uuidv7(), change: 'resume', actor, at: new Date(now) });
      resumed = nextRunAt === null ? { job } : { job, first: nextRunAt };
    });
  } catch (error) {
    const version = registered;
    if (version !== undefined) await options.fireQueue.unregister(id, version).catch(() => {});
    throw error;
  }
  if (!resumed) return undefined;
  const { job, first } = resumed;
  if (first === undefined) return 'completed';
  if (first <= now) {
    // Due already (the pass runs up to a second after `until`, or late after an outage): enqueued
    // after the commit, so a worker that takes it at once finds the job active at this version.
    const bullJobId =
      'at' in job.schedule ? onceJobIdOf(job.id, job.version) : catchUpJobIdOf(job.id, job.version, first);
    await addOccurrence(options.fireQueue.shardOf(job.id).queue, { jobId: job.id, version: job.version }, bullJobId);
  }
  return 'resumed';
}

export async function resumeDuePass(options: ResumeDueOptions, logger?: Logger): Promise<ResumeDueResult> {
  const now = (options.now ?? Date.now)();
  const result: ResumeDueResult = { resumed: 0, completed: 0 };
  for (const id of await pausesDue(options.db, new Date(now), BATCH)) {
    try {
      const outcome = await resumeOne(options, id, now);
      if (outcome) result[outcome]++;
    } catch (error) {
      // Left paused, its `paused_until` passed: the next pass tries again.
      logger?.warn({ err: error, jobId: id }, 'could not resume a job at the end of its pause; retrying');
    }
  }
  if (result.resumed + result.completed > 0) logger?.info(result, 'paused jobs resumed at their until');
  return result;
}

export function resumeDueTask(options: ResumeDueOptions): MaintenanceTask {
  return {
    name: RESUME_DUE_TASK,
    everyMs: options.everyMs ?? 1_000,
    run: (_job, logger) => resumeDuePass(options, logger),
  };
}
