/**
 * Whether this api can serve: Postgres and Redis each answer within a budget. `/health/ready`
 * answers with it and the `tickwork_ready` gauge reports it, so the two can never disagree.
 * A read replica (DATABASE_READ_URL) is reported beside them but never makes the api unready:
 * when it is down or far behind, reads go to the primary and it shows as `degraded`.
 */
import { sql, type Kysely } from 'kysely';
import { withTimeout } from '@tickwork/core';
import type { Database, ReadRouter } from '@tickwork/db';
import type { FireQueue } from '@tickwork/queue';

export interface ReadinessSources {
  db: Kysely<Database>;
  fireQueue: Pick<FireQueue, 'ping'>;
  readRouter?: Pick<ReadRouter, 'status'> | undefined;
}

interface CheckResult {
  status: 'ok' | 'down';
  error?: string;
}

async function check(work: () => Promise<unknown>, timeoutMs: number): Promise<CheckResult> {
  try {
    await withTimeout(work(), timeoutMs);
    return { status: 'ok' };
  } catch (error) {
    return { status: 'down', error: (error as Error).message.slice(0, 200) };
  }
}

/** Postgres and Redis, each with a 1 s budget. */
export async function checkReadiness(sources: ReadinessSources) {
  const [postgres, redis] = await Promise.all([
    check(() => sql`select 1`.execute(sources.db), 1_000),
    check(() => sources.fireQueue.ping(), 1_000),
  ]);
  const ok = postgres.status === 'ok' && redis.status === 'ok';
  if (!sources.readRouter) return { ok, checks: { postgres, redis } };
  const { state, reason, lagSeconds } = sources.readRouter.status();
  const replica = {
    status: state,
    ...(reason === undefined ? {} : { reason }),
    lagSeconds: lagSeconds === null ? null : Math.round(lagSeconds * 1000) / 1000,
  };
  return { ok, checks: { postgres, redis, replica } };
}
