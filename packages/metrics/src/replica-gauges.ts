/**
 * The api's read replica (DATABASE_READ_URL), read at scrape time from its read router: whether
 * reads may go to it, how far behind it is, and where reads went. Only an api with a replica
 * exports them.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** What the api's read router tells (`@tickwork/db` ReadRouter). */
export interface ReplicaStats {
  status(): { state: 'ok' | 'degraded'; lagSeconds: number | null; lagBytes: number | null };
  readonly reads: Readonly<Record<'replica' | 'primary', number>>;
  readonly fallbacks: number;
}

export function registerReplicaMetrics(registry: Registry, router: ReplicaStats): void {
  new Gauge({
    name: 'tickwork_db_replica_up',
    help: '1 while reads may go to the read replica (it answers and is not too far behind), else 0.',
    registers: [registry],
    collect() {
      this.set(router.status().state === 'ok' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tickwork_db_replica_lag_seconds',
    help: 'How old the newest primary state the read replica has replayed is (absent when unknown).',
    registers: [registry],
    collect() {
      this.reset();
      const { lagSeconds } = router.status();
      if (lagSeconds !== null) this.set(lagSeconds);
    },
  });
  new Gauge({
    name: 'tickwork_db_replica_lag_bytes',
    help: 'WAL bytes the read replica has not replayed yet (absent when unknown).',
    registers: [registry],
    collect() {
      this.reset();
      const { lagBytes } = router.status();
      if (lagBytes !== null) this.set(lagBytes);
    },
  });
  new Counter({
    name: 'tickwork_db_reads_total',
    help: 'Client reads (lists and gets) by the server that answered them: replica or primary.',
    labelNames: ['target'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ target: 'replica' }, router.reads.replica);
      this.inc({ target: 'primary' }, router.reads.primary);
    },
  });
  new Counter({
    name: 'tickwork_db_replica_fallbacks_total',
    help: 'Reads whose query failed on the read replica and that the primary answered instead.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(router.fallbacks);
    },
  });
}
