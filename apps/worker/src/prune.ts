/**
 * Retention: runs and resolved alerts older than RUN_RETENTION_DAYS, the version history of jobs
 * deleted longer ago than that, and expired Idempotency-Keys, are deleted by a
 * maintenance task (a BullMQ job scheduler of its own, so one worker of the fleet runs each pass).
 * Deletes go in small batches, each its own short statement, so a large backlog never holds locks
 * the hot path (recording runs) would wait on.
 */
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { pruneIdempotencyKeys, pruneResolvedAlerts, pruneRuns, pruneVersions, type Database } from '@tickwork/db';
import type { MaintenanceTask } from './maintenance.ts';

export const PRUNE_TASK = 'prune';
const DAY_MS = 86_400_000;

export interface PruneOptions {
  db: Kysely<Database>;
  retentionDays: number;
  /** @defaultValue 600000 (every 10 minutes) */
  everyMs?: number;
  /** @defaultValue 1000 */
  batchSize?: number;
  now?: () => number;
}

export interface PruneResult {
  runs: number;
  /** History entries of jobs deleted before the cutoff. */
  versions: number;
  idempotencyKeys: number;
  /** Alerts resolved before the cutoff (an open alert is kept however old). */
  alerts: number;
  cutoff: string;
}

export async function prunePass(options: PruneOptions, logger?: Logger): Promise<PruneResult> {
  const cutoff = new Date((options.now ?? Date.now)() - options.retentionDays * DAY_MS);
  const runs = await pruneRuns(options.db, cutoff, { batchSize: options.batchSize ?? 1_000 });
  const versions = await pruneVersions(options.db, cutoff, { batchSize: options.batchSize ?? 1_000 });
  const idempotencyKeys = await pruneIdempotencyKeys(options.db, { batchSize: options.batchSize ?? 1_000 });
  const alerts = await pruneResolvedAlerts(options.db, cutoff);
  if (runs > 0 || versions > 0 || idempotencyKeys > 0 || alerts > 0)
    logger?.info({ runs, versions, idempotencyKeys, alerts, cutoff }, 'pruned');
  return { runs, versions, idempotencyKeys, alerts, cutoff: cutoff.toISOString() };
}

export function pruneTask(options: PruneOptions): MaintenanceTask {
  return {
    name: PRUNE_TASK,
    everyMs: options.everyMs ?? 600_000,
    run: (_job, logger) => prunePass(options, logger),
  };
}
