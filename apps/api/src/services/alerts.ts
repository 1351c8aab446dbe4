/**
 * The alerts service tier: a service's alerts as the api shows them. The alerts themselves are
 * opened and resolved by the alert watch (apps/worker/src/alerts.ts), which every api and worker
 * process runs; nothing here writes.
 */
import type { Kysely } from 'kysely';
import { TickworkError, type AlertDto, type AlertReason } from '@tickwork/core';
import { findAlert, listAlerts, type AlertListFilter, type AlertRow, type Database, type Page } from '@tickwork/db';

export function alertDto(row: AlertRow): AlertDto {
  return {
    id: row.id,
    jobId: row.job_id,
    scheduledFor: row.scheduled_for.toISOString(),
    reason: row.reason as AlertReason,
    openedAt: row.opened_at.toISOString(),
    resolvedAt: row.resolved_at?.toISOString() ?? null,
  };
}

export class AlertsService {
  readonly #readDb: Kysely<Database>;

  constructor(deps: { readDb: Kysely<Database> }) {
    this.#readDb = deps.readDb;
  }

  /** The service's alerts, newest first, by keyset. */
  list(serviceId: string, filter: AlertListFilter): Promise<Page<AlertRow>> {
    return listAlerts(this.#readDb, serviceId, filter);
  }

  /** One alert of the service; another service's is not found. */
  async get(serviceId: string, id: string): Promise<AlertRow> {
    const row = await findAlert(this.#readDb, serviceId, id);
    if (!row) throw new TickworkError('not_found', `No alert ${id}.`);
    return row;
  }
}
