/**
 * `tickwork_alerts_open`: the open alerts of the whole fleet, by reason, read from Postgres at
 * scrape time. Every api and worker exports it and every one reads the same rows: aggregate with
 * `max()`, never `sum()`. Exported by the api too, so it stays visible while every worker is down.
 */
import { Gauge, type Registry } from 'prom-client';
import { ALERT_REASONS, withTimeout } from '@tickwork/core';

export interface AlertGaugeOptions {
  /** How long one read serves scrapes. @defaultValue 5000 */
  cacheMs?: number;
  /** A read that takes longer counts as failed. @defaultValue 1000 */
  timeoutMs?: number;
}

export function registerAlertGauge(
  registry: Registry,
  countOpen: () => Promise<Record<string, number>>,
  options: AlertGaugeOptions = {},
): void {
  const cacheMs = options.cacheMs ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 1_000;
  let last: { at: number; counts: Record<string, number> } | undefined;
  new Gauge({
    name: 'tickwork_alerts_open',
    help: 'Open alerts of every service, by reason (one shared table: aggregate with max, not sum).',
    labelNames: ['reason'],
    registers: [registry],
    async collect() {
      if (!last || Date.now() - last.at >= cacheMs) {
        try {
          last = { at: Date.now(), counts: await withTimeout(countOpen(), timeoutMs, 'open alerts') };
        } catch {
          // Postgres is away: no number beats a stale one; tickwork_ready says why.
          last = undefined;
        }
      }
      this.reset();
      if (!last) return;
      for (const reason of ALERT_REASONS) this.set({ reason }, last.counts[reason] ?? 0);
    },
  });
}
