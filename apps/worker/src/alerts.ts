/**
 * The alert watch: opens an alert when an occurrence of a job with `alertAfterMs` has not
 * succeeded that long after its instant, resolves it when a later occurrence succeeds, and sends
 * both to the service's `alertWebhookUrl`.
 *
 * It reads Postgres only: what the schedule named (computed from the job row) against what was
 * recorded (the runs). So it sees an occurrence that never fired, whatever the reason — every
 * worker down, Redis gone or rebuilt without its schedulers — and it runs in every api process as
 * well as every worker (the thing that failed cannot be the thing that watches). Instances share
 * the work through `SKIP LOCKED` claims on `alert_watch` rows and alerts, and a partial unique
 * index holds one open alert per job, so several of them never double-open; no leader election.
 *
 * The webhook reuses the callbacks' delivery (apps/worker/src/deliver.ts): the same Standard
 * Webhooks signature with the service's signing secrets, the same guarded dispatchers (public
 * addresses only, checked at connect time), no redirects. Each notification is a row of its own
 * (one per alert and event) with its own `webhook-id`; it is retried with backoff until a 2xx.
 */
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import {
  DEFAULT_RETRY,
  ScheduleComputeError,
  backoffDelay,
  exclusionOf,
  judgeOccurrences,
  nextOccurrences,
  normalizedScheduleOf,
  openSecret,
  uuidv7,
  windowOf,
  type AlertWebhookBody,
  type JudgeStep,
  type OutboundPolicy,
  type SecretKeys,
} from '@tickwork/core';
import {
  advanceAlertWatch,
  calendarSpecOf,
  claimNotifications,
  claimResolvableAlerts,
  claimWatchedJobs,
  findCalendars,
  jobFromRow,
  judgedThrough,
  WITHOUT_HEADERS,
  lockJobForAlert,
  openAlert,
  resolveAlert,
  scheduledRunsBetween,
  settleNotification,
  syncAlertWatch,
  type ClaimedNotification,
  type Database,
  type WatchedJob,
} from '@tickwork/db';
import { deliver } from './deliver.ts';

/** Jobs judged per transaction. */
const BATCH = 100;
/** Batches per pass at most: a backlog is worked off over several passes, never in one long one. */
const MAX_BATCHES = 20;
/** Occurrences (expected instants, recorded runs) read per job per judgement. */
const OCCURRENCES_PER_JOB = 1_000;
/** Notifications sent per pass, and how long one attempt holds its notification. */
const NOTIFICATIONS_PER_PASS = 20;
const NOTIFY_LEASE_MS = 60_000;
const NOTIFY_TIMEOUT_MS = 10_000;
/** Attempts of one notification before it is given up (about a day with the backoff below). */
export const NOTIFY_MAX_ATTEMPTS = 30;
const NOTIFY_BACKOFF = {
  ...DEFAULT_RETRY,
  backoff: { type: 'exponential' as const, delayMs: 1_000, maxDelayMs: 3_600_000 },
};

export interface AlertWatchOptions {
  db: Kysely<Database>;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** Open a service's signing secrets (sealed under SECRET_KEY, or the previous key mid-rotation). */
  secretKeys: SecretKeys;
  policy: OutboundPolicy;
  dispatchers: { guarded: Dispatcher; allowListed: Dispatcher };
  /** How often a pass runs, and how often one job is judged again. */
  intervalMs: number;
  now?: () => number;
}

export interface AlertPassResult {
  judged: number;
  opened: number;
  resolved: number;
  notified: number;
}

export interface AlertWatch {
  /** One pass now (the timer runs them on its own). */
  pass(): Promise<AlertPassResult>;
  /** Stops the timer and waits for a pass in progress. */
  close(): Promise<void>;
}

/** The instants the job's schedule named in (after, upTo] while it was due to fire, and whether they were cut short. */
function expectedInstants(
  watched: WatchedJob,
  after: number,
  upTo: number,
  onError: (error: unknown, jobId: string) => void,
): { instants: number[]; cut: boolean } {
  const row = watched.job;
  if (row.state !== 'active' || watched.serviceDisabled) return { instants: [], cut: false };
  if (row.max_runs !== null && row.run_count >= row.max_runs) return { instants: [], cut: false };
  // Instants before the current version was written belong to an earlier version (or a pause).
  const from = Math.max(after, row.updated_at.getTime());
  if (from >= upTo) return { instants: [], cut: false };
  const job = jobFromRow(row, WITHOUT_HEADERS);
  try {
    const all = nextOccurrences(normalizedScheduleOf(job), windowOf(job), from, OCCURRENCES_PER_JOB);
    const instants = all.filter((at) => at <= upTo);
    return { instants, cut: instants.length === OCCURRENCES_PER_JOB };
  } catch (error) {
    // A cron instant that cannot be computed fires nothing either; the schedule-error metric says
    // so. Anything else about one job's schedule must not stop the watch for every other job:
    // its runs are still judged.
    if (!(error instanceof ScheduleComputeError)) onError(error, row.id);
    return { instants: [], cut: false };
  }
}

export function startAlertWatch(options: AlertWatchOptions): AlertWatch {
  const { db, logger } = options;
  const now = options.now ?? Date.now;
  let running: Promise<AlertPassResult> | undefined;
  let closed = false;

  const judgeBatch = async (result: AlertPassResult): Promise<number> =>
    db.transaction().execute(async (trx) => {
      const claimed = await claimWatchedJobs(trx, BATCH);
      const at = now();
      for (const watched of claimed) {
        const alertAfterMs = watched.job.alert_after_ms ?? 0;
        const checkedUntil = watched.checkedUntil.getTime();
        const deadline = at - alertAfterMs;
        const nextCheck = new Date(at + options.intervalMs);
        if (deadline <= checkedUntil) {
          await advanceAlertWatch(trx, watched.job.id, watched.checkedUntil, nextCheck);
          continue;
        }
        const expected = expectedInstants(watched, checkedUntil, deadline, (error, jobId) =>
          logger.warn({ err: error, jobId }, 'could not compute the instants of a watched job; its runs are judged'),
        );
        // A day the job's calendars exclude is not one it should have fired on.
        const calendarIds = watched.job.calendar_ids ?? [];
        if (expected.instants.length > 0 && calendarIds.length > 0) {
          const calendars = await findCalendars(trx, watched.job.service_id, calendarIds);
          const exclusion = exclusionOf(calendars.map(calendarSpecOf));
          if (!exclusion.empty) expected.instants = expected.instants.filter((at) => !exclusion.excludes(at));
        }
        const runs = await scheduledRunsBetween(
          trx,
          watched.job.id,
          watched.checkedUntil,
          new Date(deadline),
          OCCURRENCES_PER_JOB,
        );
        let horizon = deadline;
        if (expected.cut) horizon = Math.min(horizon, expected.instants.at(-1) ?? horizon);
        if (runs.length === OCCURRENCES_PER_JOB) horizon = Math.min(horizon, runs.at(-1)?.scheduledFor ?? horizon);
        const judged = judgeOccurrences({
          now: at,
          checkedUntil,
          horizon,
          expected: expected.instants,
          runs,
          open: watched.open ? { scheduledFor: watched.open.scheduledFor.getTime() } : null,
        });
        if (judged.steps.length > 0) {
          // The job's row carries its open alert: locked first, or left for a later pass.
          if (!(await lockJobForAlert(trx, watched.job.id))) continue;
          await applySteps(trx, watched, judged.steps, result);
        }
        // A backlog cut short is judged on from where it stopped at the next pass.
        const again = horizon < deadline ? new Date(at) : nextCheck;
        await advanceAlertWatch(trx, watched.job.id, new Date(judged.checkedUntil), again);
        result.judged += 1;
      }
      return claimed.length;
    });

  const applySteps = async (
    trx: Parameters<typeof openAlert>[0],
    watched: WatchedJob,
    steps: JudgeStep[],
    result: AlertPassResult,
  ) => {
    for (const step of steps) {
      if (step.kind === 'open') {
        const opened = await openAlert(trx, {
          id: uuidv7(),
          notificationId: uuidv7(),
          serviceId: watched.job.service_id,
          jobId: watched.job.id,
          scheduledFor: new Date(step.scheduledFor),
          reason: step.reason,
        });
        if (opened) {
          result.opened += 1;
          logger.info(
            { alertId: opened.id, jobId: watched.job.id, reason: step.reason, scheduledFor: opened.scheduled_for },
            'alert opened',
          );
        }
      } else {
        const resolved = await resolveAlert(trx, watched.job.id, uuidv7());
        if (resolved) {
          result.resolved += 1;
          logger.info({ alertId: resolved.id, jobId: watched.job.id }, 'alert resolved');
        }
      }
    }
  };

  /** Open alerts whose job has succeeded since, at once rather than at the next deadline. */
  const resolveSucceeded = async (result: AlertPassResult) => {
    await db.transaction().execute(async (trx) => {
      for (const alert of await claimResolvableAlerts(trx, BATCH)) {
        const resolved = await resolveAlert(trx, alert.job_id, uuidv7());
        if (resolved) {
          // The watch judges on from the success that resolved it, as its own walk would have.
          await judgedThrough(trx, alert.job_id, alert.resolved_by);
          result.resolved += 1;
          logger.info({ alertId: resolved.id, jobId: alert.job_id }, 'alert resolved');
        }
      }
    });
  };

  const send = async (claimed: ClaimedNotification): Promise<boolean> => {
    if (claimed.url === null) {
      await settleNotification(db, claimed.id, { kind: 'failed', error: 'the service has no alertWebhookUrl' });
      return false;
    }
    const alert = claimed.alert;
    const body: AlertWebhookBody = {
      type: claimed.event,
      timestamp: new Date(now()).toISOString(),
      data: {
        id: alert.id,
        jobId: alert.job_id,
        jobName: claimed.jobName,
        scheduledFor: alert.scheduled_for.toISOString(),
        reason: alert.reason as AlertWebhookBody['data']['reason'],
        openedAt: alert.opened_at.toISOString(),
        resolvedAt: alert.resolved_at?.toISOString() ?? null,
      },
    };
    const bodyText = JSON.stringify(body);
    const secrets = [openSecret(claimed.signingSecret, options.secretKeys)];
    const until = claimed.previousSecretExpiresAt;
    if (claimed.previousSigningSecret && until && until.getTime() > now()) {
      secrets.push(openSecret(claimed.previousSigningSecret, options.secretKeys));
    }
    const outcome = await deliver(
      {
        runId: claimed.id,
        jobId: alert.job_id,
        scheduledFor: alert.scheduled_for.getTime(),
        attempt: claimed.attempts,
        trigger: 'alert',
        target: {
          url: claimed.url,
          method: 'POST',
          headers: { 'tickwork-event': claimed.event },
          body,
          bodyText,
          timeoutMs: NOTIFY_TIMEOUT_MS,
        },
        signingSecrets: secrets,
      },
      options.policy,
      options.dispatchers,
    );
    const error = outcome.error ?? 'failed';
    if (outcome.result.kind === 'response' && outcome.result.status >= 200 && outcome.result.status < 300) {
      await settleNotification(db, claimed.id, { kind: 'delivered' });
      return true;
    }
    if (outcome.result.kind === 'refused' || claimed.attempts >= NOTIFY_MAX_ATTEMPTS) {
      logger.warn({ notificationId: claimed.id, alertId: alert.id, error }, 'alert webhook given up');
      await settleNotification(db, claimed.id, { kind: 'failed', error });
      return false;
    }
    const retryAt = new Date(now() + backoffDelay(NOTIFY_BACKOFF, claimed.attempts));
    await settleNotification(db, claimed.id, { kind: 'retry', error, at: retryAt });
    return false;
  };

  const notify = async (result: AlertPassResult) => {
    const claimed = await claimNotifications(db, NOTIFICATIONS_PER_PASS, NOTIFY_LEASE_MS);
    const sent = await Promise.all(
      claimed.map((notification) =>
        send(notification).catch((error: unknown) => {
          logger.warn({ err: error, notificationId: notification.id }, 'alert webhook attempt failed');
          return false;
        }),
      ),
    );
    result.notified += sent.filter(Boolean).length;
  };

  const pass = async (): Promise<AlertPassResult> => {
    const result: AlertPassResult = { judged: 0, opened: 0, resolved: 0, notified: 0 };
    await syncAlertWatch(db);
    for (let batch = 0; batch < MAX_BATCHES && !closed; batch++) {
      if ((await judgeBatch(result)) < BATCH) break;
    }
    await resolveSucceeded(result);
    await notify(result);
    return result;
  };

  const runPass = (): Promise<AlertPassResult> => {
    running ??= pass().finally(() => {
      running = undefined;
    });
    return running;
  };

  const timer = setInterval(() => {
    if (running) return;
    runPass().catch((error: unknown) => logger.warn({ err: error }, 'alert watch pass failed; the next one retries'));
  }, options.intervalMs);
  timer.unref();

  return {
    pass: runPass,
    async close() {
      closed = true;
      clearInterval(timer);
      await running?.catch(() => {});
    },
  };
}
