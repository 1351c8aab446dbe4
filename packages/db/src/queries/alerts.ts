/**
 * Alerts (migration 0010): the list the api serves, and the statements of the alert watch
 * (apps/worker/src/alerts.ts), which every api and worker process runs. Rows the watch works on
 * are claimed with `SKIP LOCKED`, so instances share the work without waiting on one another,
 * and a job's row is locked (`FOR NO KEY UPDATE SKIP LOCKED`) before its alert changes, so the
 * watch never waits on the fire path or a delete, and they never deadlock with it.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { AlertEvent, AlertReason, AlertState, ObservedRun } from '@tickwork/core';
import type { AlertRow, Database, JobRow, OpenAlert, ServiceRow } from '../types.ts';
import { pageOf, type Page } from './cursor.ts';

export interface AlertListFilter {
  limit: number;
  afterId?: string | undefined;
  state?: AlertState | undefined;
  jobId?: string | undefined;
}

/** A service's alerts, newest first (UUIDv7 ids), by keyset. */
export async function listAlerts(
  db: Kysely<Database>,
  serviceId: string,
  filter: AlertListFilter,
): Promise<Page<AlertRow>> {
  let query = db.selectFrom('alerts').selectAll().where('service_id', '=', serviceId);
  if (filter.afterId) query = query.where('id', '<', filter.afterId);
  if (filter.state === 'open') query = query.where('resolved_at', 'is', null);
  if (filter.state === 'resolved') query = query.where('resolved_at', 'is not', null);
  if (filter.jobId) query = query.where('job_id', '=', filter.jobId);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(filter.limit + 1)
    .execute();
  return pageOf(rows, filter.limit);
}

export async function findAlert(db: Kysely<Database>, serviceId: string, id: string): Promise<AlertRow | undefined> {
  return db
    .selectFrom('alerts')
    .selectAll()
    .where('service_id', '=', serviceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Open alerts of the whole fleet, by reason (the `tickwork_alerts_open` gauge). */
export async function countOpenAlerts(db: Kysely<Database>): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom('alerts')
    .select(['reason', (eb) => eb.fn.countAll<string>().as('n')])
    .where('resolved_at', 'is', null)
    .groupBy('reason')
    .execute();
  return Object.fromEntries(rows.map((row) => [row.reason, Number(row.n)]));
}

/** Sets or clears a service's `alertWebhookUrl`. */
export async function setAlertWebhookUrl(
  db: Kysely<Database>,
  id: string,
  url: string | null,
): Promise<ServiceRow | undefined> {
  return db
    .updateTable('services')
    .set({ alert_webhook_url: url })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/**
 * Starts watching every job that asks for alerts and is not watched yet, from its last change on
 * (its creation, or the PATCH that set `alertAfterMs`), and stops watching those that no longer ask.
 */
export async function syncAlertWatch(db: Kysely<Database>): Promise<void> {
  await sql`
    insert into alert_watch (job_id, checked_until)
    select j.id, j.updated_at from jobs j
    where j.alert_after_ms is not null and not exists (select 1 from alert_watch w where w.job_id = j.id)
    on conflict do nothing
  `.execute(db);
  await sql`
    delete from alert_watch w
    where not exists (select 1 from jobs j where j.id = w.job_id and j.alert_after_ms is not null)
  `.execute(db);
}

/** A watched job, claimed for one judgement. */
export interface WatchedJob {
  job: JobRow;
  checkedUntil: Date;
  serviceDisabled: boolean;
  /** The job's open alert, if any. */
  open: { id: string; scheduledFor: Date } | null;
}

/**
 * Claims up to `limit` watched jobs due for a judgement, for the rest of the transaction; rows
 * another instance holds are skipped.
 */
export async function claimWatchedJobs(trx: Transaction<Database>, limit: number): Promise<WatchedJob[]> {
  const rows = await trx
    .selectFrom('alert_watch as w')
    .innerJoin('jobs', 'jobs.id', 'w.job_id')
    .innerJoin('services as s', 's.id', 'jobs.service_id')
    .selectAll('jobs')
    .select(['w.checked_until', 's.disabled_at as service_disabled_at'])
    .where('w.next_check_at', '<=', sql<Date>`now()`)
    .where('jobs.alert_after_ms', 'is not', null)
    .orderBy('w.next_check_at')
    .limit(limit)
    .forUpdate('w')
    .skipLocked()
    .execute();
  if (rows.length === 0) return [];
  const open = await trx
    .selectFrom('alerts')
    .select(['id', 'job_id', 'scheduled_for'])
    .where(
      'job_id',
      'in',
      rows.map((row) => row.id),
    )
    .where('resolved_at', 'is', null)
    .execute();
  const openOf = new Map(open.map((alert) => [alert.job_id, { id: alert.id, scheduledFor: alert.scheduled_for }]));
  return rows.map(({ checked_until, service_disabled_at, ...job }) => ({
    job,
    checkedUntil: checked_until,
    serviceDisabled: service_disabled_at !== null,
    open: openOf.get(job.id) ?? null,
  }));
}

/** A job's scheduled runs in (after, upTo], earliest first, at most `limit`. */
export async function scheduledRunsBetween(
  db: Kysely<Database>,
  jobId: string,
  after: Date,
  upTo: Date,
  limit: number,
): Promise<ObservedRun[]> {
  const rows = await db
    .selectFrom('runs')
    .select(['scheduled_for', 'status', 'skip_reason', 'attempts', 'started_at'])
    .where('job_id', '=', jobId)
    .where('trigger', '=', 'schedule')
    .where('scheduled_for', '>', after)
    .where('scheduled_for', '<=', upTo)
    .orderBy('scheduled_for')
    .limit(limit)
    .execute();
  return rows.map((row) => ({
    scheduledFor: row.scheduled_for.getTime(),
    status: row.status,
    skipReason: row.skip_reason,
    attempts: row.attempts,
    startedAt: row.started_at?.getTime() ?? null,
  }));
}

/**
 * Locks a job's row for an alert change, unless someone else holds it (the fire path, a change,
 * a delete): then false, and the caller tries again on a later pass.
 */
export async function lockJobForAlert(trx: Transaction<Database>, jobId: string): Promise<boolean> {
  const { rows } = await sql`select id from jobs where id = ${jobId} for no key update skip locked`.execute(trx);
  return rows.length > 0;
}

async function enqueueNotification(
  trx: Transaction<Database>,
  alert: { id: string; serviceId: string },
  event: AlertEvent,
  id: string,
): Promise<void> {
  await sql`
    insert into alert_notifications (id, alert_id, service_id, event)
    select ${id}, ${alert.id}, s.id, ${event} from services s
    where s.id = ${alert.serviceId} and s.alert_webhook_url is not null
    on conflict (alert_id, event) do nothing
  `.execute(trx);
}

/**
 * Opens an alert for a job whose row the caller locked: the alert, the job's `open_alert`, and
 * the webhook's notification when the service has a URL. Undefined when one is open already.
 */
export async function openAlert(
  trx: Transaction<Database>,
  alert: {
    id: string;
    notificationId: string;
    serviceId: string;
    jobId: string;
    scheduledFor: Date;
    reason: AlertReason;
  },
): Promise<AlertRow | undefined> {
  const { rows } = await sql<AlertRow>`
    insert into alerts (id, service_id, job_id, scheduled_for, reason)
    values (${alert.id}, ${alert.serviceId}, ${alert.jobId}, ${alert.scheduledFor}, ${alert.reason})
    on conflict (job_id) where resolved_at is null do nothing
    returning *
  `.execute(trx);
  const row = rows[0];
  if (!row) return undefined;
  const open: OpenAlert = { id: row.id, reason: row.reason, openedAt: row.opened_at.toISOString() };
  await trx
    .updateTable('jobs')
    .set({ open_alert: JSON.stringify(open) })
    .where('id', '=', alert.jobId)
    .execute();
  await enqueueNotification(trx, alert, 'alert.opened', alert.notificationId);
  return row;
}

/** Resolves a job's open alert (the caller locked the job's row); undefined when none is open. */
export async function resolveAlert(
  trx: Transaction<Database>,
  jobId: string,
  notificationId: string,
): Promise<AlertRow | undefined> {
  const row = await trx
    .updateTable('alerts')
    .set({ resolved_at: sql<Date>`now()` })
    .where('job_id', '=', jobId)
    .where('resolved_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  if (!row) return undefined;
  await trx.updateTable('jobs').set({ open_alert: null }).where('id', '=', jobId).execute();
  await enqueueNotification(trx, { id: row.id, serviceId: row.service_id }, 'alert.resolved', notificationId);
  return row;
}

/** Records how far a watched job is judged, and when to look again. */
export async function advanceAlertWatch(
  trx: Transaction<Database>,
  jobId: string,
  checkedUntil: Date,
  nextCheckAt: Date,
): Promise<void> {
  await trx
    .updateTable('alert_watch')
    .set({ checked_until: checkedUntil, next_check_at: nextCheckAt })
    .where('job_id', '=', jobId)
    .execute();
}

/** An open alert a later occurrence resolves: `resolved_by` is the first such occurrence's instant. */
export type ResolvableAlert = AlertRow & { resolved_by: Date };

/**
 * Claims up to `limit` open alerts that a later scheduled occurrence of their job has succeeded
 * since, with their job's row (both skipped when someone else holds them), and the first such
 * occurrence's instant. Any job's: an alert stays resolvable when its job stops asking for alerts.
 */
export async function claimResolvableAlerts(trx: Transaction<Database>, limit: number): Promise<ResolvableAlert[]> {
  const { rows } = await sql<ResolvableAlert>`
    select a.*, s.resolved_by from alerts a join jobs j on j.id = a.job_id
    cross join lateral (
      select min(r.scheduled_for) as resolved_by from runs r
      where r.job_id = a.job_id and r.trigger = 'schedule' and r.status = 'succeeded'
        and r.scheduled_for > a.scheduled_for
    ) s
    where a.resolved_at is null and s.resolved_by is not null
    limit ${limit}
    for update of a skip locked
    for no key update of j skip locked
  `.execute(trx);
  return rows;
}

/**
 * Records a watched job as judged at least through `instant` (it never moves back): an alert
 * resolved early by the occurrence at `instant` stood for every occurrence before it, so the
 * failures between the alert's occurrence and that success open no second alert when the watch
 * reaches them. Nothing for a job no longer watched.
 */
export async function judgedThrough(trx: Transaction<Database>, jobId: string, instant: Date): Promise<void> {
  await trx
    .updateTable('alert_watch')
    .set({ checked_until: sql<Date>`greatest(checked_until, ${instant})` })
    .where('job_id', '=', jobId)
    .execute();
}

/** A notification claimed for one attempt, with what its webhook call needs. */
export interface ClaimedNotification {
  id: string;
  event: AlertEvent;
  attempts: number;
  alert: AlertRow;
  jobName: string;
  url: string | null;
  signingSecret: string;
  previousSigningSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

/**
 * Claims up to `limit` notifications due for an attempt: each is leased for `leaseMs` (another
 * instance takes it again only after that), and its attempt counted before it is made.
 */
export async function claimNotifications(
  db: Kysely<Database>,
  limit: number,
  leaseMs: number,
): Promise<ClaimedNotification[]> {
  const { rows } = await sql<{
    id: string;
    event: AlertEvent;
    attempts: number;
    job_name: string;
    alert_webhook_url: string | null;
    signing_secret: string;
    previous_signing_secret: string | null;
    previous_secret_expires_at: Date | null;
    alert: AlertRow & { scheduled_for: string; opened_at: string; resolved_at: string | null };
  }>`
    with claimed as (
      update alert_notifications set attempts = attempts + 1,
        next_attempt_at = now() + make_interval(secs => ${leaseMs / 1000}::double precision)
      where id in (
        select id from alert_notifications
        where delivered_at is null and failed_at is null and next_attempt_at <= now()
        order by next_attempt_at
        limit ${limit}
        for update skip locked
      )
      returning id, alert_id, service_id, event, attempts
    )
    select c.id, c.event, c.attempts, j.name as job_name, s.alert_webhook_url, s.signing_secret,
      s.previous_signing_secret, s.previous_secret_expires_at, to_jsonb(a) as alert
    from claimed c
    join alerts a on a.id = c.alert_id
    join jobs j on j.id = a.job_id
    join services s on s.id = c.service_id
  `.execute(db);
  return rows.map((row) => ({
    id: row.id,
    event: row.event,
    attempts: row.attempts,
    alert: {
      ...row.alert,
      scheduled_for: new Date(row.alert.scheduled_for),
      opened_at: new Date(row.alert.opened_at),
      resolved_at: row.alert.resolved_at === null ? null : new Date(row.alert.resolved_at),
    },
    jobName: row.job_name,
    url: row.alert_webhook_url,
    signingSecret: row.signing_secret,
    previousSigningSecret: row.previous_signing_secret,
    previousSecretExpiresAt: row.previous_secret_expires_at,
  }));
}

/** Records a notification's attempt: delivered, given up on, or due again at `retryAt`. */
export async function settleNotification(
  db: Kysely<Database>,
  id: string,
  outcome: { kind: 'delivered' } | { kind: 'failed'; error: string } | { kind: 'retry'; error: string; at: Date },
): Promise<void> {
  const set =
    outcome.kind === 'delivered'
      ? { delivered_at: sql<Date>`now()`, last_error: null }
      : outcome.kind === 'failed'
        ? { failed_at: sql<Date>`now()`, last_error: outcome.error }
        : { next_attempt_at: outcome.at, last_error: outcome.error };
  await db.updateTable('alert_notifications').set(set).where('id', '=', id).execute();
}

/** Deletes resolved alerts older than `cutoff` (their notifications go with them). */
export async function pruneResolvedAlerts(db: Kysely<Database>, cutoff: Date): Promise<number> {
  const result = await db.deleteFrom('alerts').where('resolved_at', '<', cutoff).executeTakeFirst();
  return Number(result.numDeletedRows);
}
