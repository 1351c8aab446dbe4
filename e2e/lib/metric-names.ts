/**
 * The metric contract between the app and infra/: every series name that the Prometheus alerts,
 * the Grafana dashboard and the KEDA autoscaler may use, exactly as a scrape shows it
 * (histograms by their `_bucket` / `_sum` / `_count` series).
 *
 * `e2e/infra.test.ts` checks that infra/ names nothing outside this list; a live test can scrape
 * the api's `/metrics` and the worker's `WORKER_PORT/metrics` and check that every name here
 * (but {@link PROMETHEUS_SYNTHETIC_METRICS}) is exported by one of them, with the labels in
 * {@link METRIC_LABELS}.
 */
export const DASHBOARD_METRICS = [
  // api: HTTP RED by route
  'http_request_duration_seconds_bucket',
  'http_request_duration_seconds_sum',
  'http_request_duration_seconds_count',
  // worker: occurrences and delivery
  'tickwork_runs_total',
  'tickwork_fire_lag_seconds_bucket',
  'tickwork_fire_lag_seconds_sum',
  'tickwork_fire_lag_seconds_count',
  'tickwork_callback_duration_seconds_bucket',
  'tickwork_callback_duration_seconds_sum',
  'tickwork_callback_duration_seconds_count',
  'tickwork_retries_total',
  'tickwork_reconcile_repairs_total',
  'tickwork_schedule_errors_total',
  // the shared queue, read from Redis (every exporter reports the same values: use max())
  'tickwork_queue_jobs',
  'tickwork_schedulers',
  // job alerts, read from Postgres (every exporter reports the same values: use max())
  'tickwork_alerts_open',
  // every process
  'tickwork_ready',
  'tickwork_db_pool_total',
  'tickwork_db_pool_idle',
  'tickwork_db_pool_waiting',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_seconds',
  // api with a read replica (DATABASE_READ_URL) only
  'tickwork_db_replica_up',
  'tickwork_db_replica_lag_seconds',
  'tickwork_db_reads_total',
  'tickwork_db_replica_fallbacks_total',
  // written by Prometheus for every scrape target, not by the app
  'up',
] as const;

export type DashboardMetric = (typeof DASHBOARD_METRICS)[number];

/** Series Prometheus makes itself: a scrape of the app does not contain them. */
export const PROMETHEUS_SYNTHETIC_METRICS: readonly DashboardMetric[] = ['up'];

/**
 * Series only an api with a read replica exports (DATABASE_READ_URL): e2e/replica.test.ts checks
 * them on such an api, e2e/observability.test.ts (no replica) leaves them out.
 */
export const REPLICA_METRICS: readonly DashboardMetric[] = [
  'tickwork_db_replica_up',
  'tickwork_db_replica_lag_seconds',
  'tickwork_db_reads_total',
  'tickwork_db_replica_fallbacks_total',
];

/**
 * The labels infra/ selects on or groups by, per metric family (beside `job` and `instance`,
 * which Prometheus adds). Label values the alerts rely on: `status` of tickwork_runs_total is one
 * of succeeded, failed, dead, skipped, retrying; `state` of tickwork_queue_jobs one of waiting,
 * delayed, active, failed.
 */
export const METRIC_LABELS: Readonly<Record<string, readonly string[]>> = {
  http_request_duration_seconds: ['method', 'route', 'status_code'],
  tickwork_runs_total: ['status', 'trigger'],
  tickwork_queue_jobs: ['state'],
  tickwork_reconcile_repairs_total: ['kind'],
  tickwork_alerts_open: ['reason'],
  tickwork_db_reads_total: ['target'],
};

/** The names every metric in infra/ must start with (or be). */
export const METRIC_NAME_PATTERN = /^(tickwork_|http_request_|process_|nodejs_|up$)/;

const NOT_METRICS = new Set([
  // aggregation operators (followed by `by (...)`, not always by `(`)
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
  // keywords and modifiers
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'atan2',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression reads. Strings, label matchers, ranges and grouping
 * lists are removed first; what is left that is neither a function call, an operator nor a
 * number is a metric name. Grafana's `$__rate_interval`-style variables are allowed.
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\$\{?[A-Za-z_][\w]*(?::\w+)?\}?/g, '5m')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1()');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.:])[A-Za-z_:][\w:]*/g)) {
    const name = match[0];
    const rest = stripped.slice(match.index + name.length).trimStart();
    if (rest.startsWith('(') || NOT_METRICS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names].sort();
}

/** `[metric, labelName]` for every `metric{label op "..."}` selector in an expression. */
export function selectorLabelsIn(expr: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  for (const m of noStrings.matchAll(/([A-Za-z_:][\w:]*)\s*\{([^}]*)\}/g)) {
    for (const l of m[2]!.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)) out.push([m[1]!, l[1]!]);
  }
  return out;
}

/** The metric family of a series name: `x_bucket` / `x_sum` / `x_count` → `x` for histograms. */
export function familyOf(series: string): string {
  return series.replace(/_(bucket|sum|count)$/, '');
}
