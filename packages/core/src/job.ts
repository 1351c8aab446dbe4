import {
  exclusionOf,
  nextIncludedOccurrence,
  nextMarkedOccurrences,
  type Exclusion,
  type MarkedOccurrence,
} from './calendar.ts';
import { parseDuration } from './duration.ts';
import { quotaExceeded, validationError, type FieldError, type TickworkError } from './errors.ts';
import {
  MIN_INTERVAL_MS,
  canonicalCron,
  firesMoreOftenThan,
  nextOccurrence,
  normalizeSchedule,
  type NormalizedSchedule,
  type Schedule,
  type ScheduleInput,
  type ScheduleWindow,
} from './schedule.ts';
import type { CreateJobBody, JobState, SchedulePreviewBody } from './schemas.ts';
import { REDACTED, isSensitiveHeader } from './target-headers.ts';

export interface Target {
  url: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers: Record<string, string>;
  /** Further headers whose values are secret (shown as `"***"`), besides {@link SENSITIVE_HEADERS}. */
  secretHeaders?: string[];
  body?: unknown;
  /**
   * `body` exactly as the client sent it: its JSON text, key order and spacing kept (a string
   * body as its JSON string literal). What a callback carries.
   */
  bodyText?: string;
  timeoutMs: number;
}

export interface RetryPolicy {
  maxAttempts: number;
  backoff: { type: 'exponential' | 'fixed'; delayMs: number; maxDelayMs: number };
}

export interface MisfirePolicy {
  policy: 'fire_once' | 'skip';
  graceMs: number;
}

/** What a job is, with every default applied: the part a client sets. */
export interface JobSpec {
  name: string;
  description: string | null;
  labels: Record<string, string>;
  schedule: Schedule;
  target: Target;
  startAt: number | null;
  endAt: number | null;
  maxRuns: number | null;
  jitterMs: number;
  overlap: 'allow' | 'skip';
  misfire: MisfirePolicy;
  retry: RetryPolicy;
  /** Ids of the exclusion calendars the job honours (calendar.ts); absent or empty for none. */
  calendars?: string[];
  /**
   * Alert when an occurrence has not succeeded this many ms after its instant; null (or absent,
   * in a spec built by hand) asks for no alerts.
   */
  alertAfterMs?: number | null;
}

/** A stored job: its spec plus identity, state and version. Times are epoch ms. */
export interface Job extends JobSpec {
  id: string;
  serviceId: string;
  state: JobState;
  version: number;
  createdAt: number;
  updatedAt: number;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
export const MAX_TIMEOUT_MS = 300_000;
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 3,
  backoff: { type: 'exponential', delayMs: 1_000, maxDelayMs: 3_600_000 },
};
export const DEFAULT_MISFIRE: MisfirePolicy = { policy: 'fire_once', graceMs: 60_000 };

/** Limits a service's quota puts on its jobs. */
export interface ScheduleLimits {
  minIntervalMs: number;
}

/**
 * Checks what the JSON schema cannot (the URL, the schedule's meaning, the window), and applies
 * defaults. For an update, `previous` is the stored spec: a value that did not change is not held
 * to "must be in the future" again (a completed one-shot's `at` may be in the past).
 */
export function buildJobSpec(
  body: CreateJobBody,
  options: {
    now: number;
    limits?: ScheduleLimits;
    previous?: JobSpec;
    /** `body.target.body` as the client wrote it (JSON text); by default its JSON serialization. */
    bodyText?: string | undefined;
  },
): JobSpec {
  const checked = checkSchedule(body, options);
  const headers = headersOf(body.target, options.previous);
  const errors: FieldError[] = [
    ...checked.errors,
    ...targetErrors(body.target),
    ...headers.errors,
    ...calendarListErrors(body.calendars),
  ];
  const backoff = body.retry?.backoff;
  if (backoff?.delayMs !== undefined && backoff.maxDelayMs !== undefined && backoff.maxDelayMs < backoff.delayMs) {
    errors.push({ field: 'retry.backoff.maxDelayMs', message: 'must be at least delayMs' });
  }
  errors.push(...alertAfterErrors(body));
  if (errors.length > 0 || !checked.schedule) throw validationError(errors);
  const quotaError = minIntervalQuotaError(checked.schedule, body.schedule, options.limits);
  if (quotaError) throw quotaError;

  return {
    name: body.name,
    description: body.description ?? null,
    labels: body.labels ?? {},
    schedule: scheduleOf(checked.schedule, body.schedule),
    target: {
      url: body.target.url,
      method: body.target.method ?? 'POST',
      headers: headers.headers,
      ...(body.target.secretHeaders == null ? {} : { secretHeaders: body.target.secretHeaders }),
      ...(body.target.body === undefined
        ? {}
        : { body: body.target.body, bodyText: options.bodyText ?? JSON.stringify(body.target.body) }),
      timeoutMs: body.target.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    },
    startAt: checked.startAt,
    endAt: checked.endAt,
    maxRuns: body.maxRuns ?? null,
    jitterMs: body.jitterMs ?? 0,
    overlap: body.overlap ?? 'allow',
    misfire: {
      policy: body.misfire?.policy ?? DEFAULT_MISFIRE.policy,
      graceMs: body.misfire?.graceMs ?? DEFAULT_MISFIRE.graceMs,
    },
    retry: {
      maxAttempts: body.retry?.maxAttempts ?? DEFAULT_RETRY.maxAttempts,
      backoff: {
        type: backoff?.type ?? DEFAULT_RETRY.backoff.type,
        delayMs: backoff?.delayMs ?? DEFAULT_RETRY.backoff.delayMs,
        maxDelayMs: backoff?.maxDelayMs ?? DEFAULT_RETRY.backoff.maxDelayMs,
      },
    },
    calendars: body.calendars ? [...body.calendars] : [],
    alertAfterMs: body.alertAfterMs ?? null,
  };
}

/** A job's (or a preview's) `calendars`: each id once. Whether each exists is the api's to check. */
export function calendarListErrors(ids: readonly string[] | undefined): FieldError[] {
  const seen = new Set<string>();
  const errors: FieldError[] = [];
  for (const [i, id] of (ids ?? []).entries()) {
    if (seen.has(id.toLowerCase())) errors.push({ field: `calendars.${i}`, message: 'is listed twice' });
    seen.add(id.toLowerCase());
  }
  return errors;
}

/**
 * `alertAfterMs` must leave an occurrence the time it may take by its own definition: its jitter
 * delays it by up to `jitterMs`, so a shorter deadline would alert on an occurrence that is on time.
 */
function alertAfterErrors(body: CreateJobBody): FieldError[] {
  const alertAfterMs = body.alertAfterMs;
  if (alertAfterMs === undefined || alertAfterMs === null) return [];
  const jitterMs = body.jitterMs ?? 0;
  if (alertAfterMs <= jitterMs) return [{ field: 'alertAfterMs', message: 'must be more than jitterMs' }];
  return [];
}

/**
 * `POST /v1/schedules/preview`: the schedule and its window checked exactly as a create checks
 * them (400; the service's minimum interval 403), then the next `count` occurrences after `now`,
 * the ones a job created now would fire: a create's `nextRunAt` is the first of them.
 */
export function previewSchedule(
  body: SchedulePreviewBody,
  options: { now: number; limits?: ScheduleLimits; exclusion?: Exclusion },
): MarkedOccurrence[] {
  const checked = checkSchedule(body, options);
  const errors = [...checked.errors, ...calendarListErrors(body.calendars)];
  if (errors.length > 0 || !checked.schedule) throw validationError(errors);
  const quotaError = minIntervalQuotaError(checked.schedule, body.schedule, options.limits);
  if (quotaError) throw quotaError;
  const window = windowOf({ startAt: checked.startAt, endAt: checked.endAt, createdAt: options.now });
  return nextMarkedOccurrences(
    checked.schedule,
    window,
    options.now,
    body.count ?? 10,
    options.exclusion ?? exclusionOf([]),
    { includeExcluded: body.includeExcluded === true },
  );
}

/** A schedule and its window, as checked for a create, a PATCH and a preview alike. */
function checkSchedule(
  body: { schedule: ScheduleInput; startAt?: string | null | undefined; endAt?: string | null | undefined },
  options: { now: number; previous?: JobSpec },
): { schedule?: NormalizedSchedule; startAt: number | null; endAt: number | null; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const previous = options.previous;
  const scheduleKept = previous !== undefined && JSON.stringify(previous.schedule) === JSON.stringify(body.schedule);
  const normalized = normalizeSchedule(body.schedule, { now: scheduleKept ? 0 : options.now });
  if ('errors' in normalized) errors.push(...normalized.errors);
  // Absent and null both mean unset: a job read back (which shows null) can be sent again.
  const startAt = body.startAt == null ? null : Date.parse(body.startAt);
  const endAt = body.endAt == null ? null : Date.parse(body.endAt);
  if (startAt !== null && endAt !== null && endAt <= startAt) {
    errors.push({ field: 'endAt', message: 'must be after startAt' });
  }
  const endAtKept = previous !== undefined && previous.endAt === endAt;
  if (endAt !== null && endAt <= options.now && !endAtKept) {
    errors.push({ field: 'endAt', message: 'must be in the future' });
  }
  return { ...('schedule' in normalized ? { schedule: normalized.schedule } : {}), startAt, endAt, errors };
}

/**
 * The minimum-interval rule, for creates, PATCHes and previews alike: a 403 naming the service's
 * `minIntervalMs` quota when the schedule can fire twice within it ({@link firesMoreOftenThan}).
 * A quota, not a validation error: the same schedule is valid for another service. Only the
 * system-wide floor (1 s) makes an interval invalid (400, in `normalizeSchedule`).
 */
function minIntervalQuotaError(
  schedule: NormalizedSchedule,
  input: ScheduleInput,
  limits: ScheduleLimits | undefined,
): TickworkError | undefined {
  const min = limits?.minIntervalMs ?? MIN_INTERVAL_MS;
  if (min <= MIN_INTERVAL_MS) return undefined;
  const gap = firesMoreOftenThan(schedule, min);
  if (gap === undefined) return undefined;
  const field =
    schedule.kind === 'cron' ? 'schedule.cron' : input.every !== undefined ? 'schedule.every' : 'schedule.everyMs';
  return quotaExceeded(
    'minIntervalMs',
    `This service's jobs may fire at most once every ${min} ms; this schedule can fire ${gap} ms apart.`,
    [{ field, message: `fires more often than the minIntervalMs quota of ${min} ms` }],
  );
}

/** The schedule to store: the client's own spelling (`every: "5m"` stays so), with defaults filled in. */
function scheduleOf(normalized: NormalizedSchedule, input: ScheduleInput): Schedule {
  switch (normalized.kind) {
    case 'cron':
      return { cron: normalized.cron, timezone: normalized.timezone };
    case 'every':
      return typeof input.every === 'string' ? { every: input.every } : { everyMs: normalized.everyMs };
    case 'at':
      return { at: new Date(normalized.at).toISOString() };
  }
}

/** Headers Tickwork sets itself: a job may not override them. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'idempotency-key',
  'user-agent',
]);

/**
 * The headers to store. A job read back shows each sensitive value as `"***"`; sent again as it
 * is (a PATCH, or the read-back target in full) it keeps the stored value. A `"***"` with no
 * stored value to stand for is refused rather than sent to the callback as a credential.
 */
function headersOf(
  target: CreateJobBody['target'],
  previous: JobSpec | undefined,
): { headers: Record<string, string>; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const secretHeaders = target.secretHeaders ?? [];
  const stored = Object.entries(previous?.target.headers ?? {});
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(target.headers ?? {})) {
    if (value !== REDACTED || !isSensitiveHeader(name, secretHeaders)) {
      headers[name] = value;
      continue;
    }
    const kept = stored.find(([storedName]) => storedName.toLowerCase() === name.toLowerCase());
    if (kept) headers[name] = kept[1];
    else
      errors.push({ field: `target.headers.${name}`, message: `is "${REDACTED}", the redacted form; send the value` });
  }
  for (const name of secretHeaders) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      errors.push({ field: 'target.secretHeaders', message: `"${name}" is not a valid header name` });
    }
  }
  return { headers, errors };
}

function targetErrors(target: { url: string; headers?: Record<string, string> | undefined }): FieldError[] {
  const errors: FieldError[] = [];
  let url: URL | undefined;
  try {
    url = new URL(target.url);
  } catch {
    errors.push({ field: 'target.url', message: 'is not a valid URL' });
  }
  if (url) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      errors.push({ field: 'target.url', message: 'must use http or https' });
    }
    if (url.username !== '' || url.password !== '') {
      errors.push({ field: 'target.url', message: 'must not carry credentials; use target.headers' });
    }
  }
  for (const name of Object.keys(target.headers ?? {})) {
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower) || lower.startsWith('tickwork-')) {
      errors.push({ field: `target.headers.${name}`, message: 'is set by Tickwork and cannot be overridden' });
    } else if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      errors.push({ field: `target.headers.${name}`, message: 'is not a valid header name' });
    }
  }
  for (const [name, value] of Object.entries(target.headers ?? {})) {
    if (/[\r\n\0]/.test(value))
      errors.push({ field: `target.headers.${name}`, message: 'must not contain CR, LF or NUL' });
  }
  return errors;
}

/**
 * The schedule in its computable form. A stored schedule was validated when it was written, so
 * it is converted, not validated again: validation computes cron occurrences, and the worker
 * (each occurrence) and the reconciler (every active job, each pass) call this on hot paths.
 */
export function normalizedScheduleOf(job: Pick<JobSpec, 'schedule'>): NormalizedSchedule {
  const schedule = job.schedule;
  if ('cron' in schedule)
    return { kind: 'cron', cron: canonicalCron(schedule.cron), timezone: schedule.timezone ?? 'UTC' };
  if ('everyMs' in schedule) return { kind: 'every', everyMs: schedule.everyMs };
  if ('every' in schedule) {
    const everyMs = parseDuration(schedule.every);
    if (everyMs === undefined) throw validationError([{ field: 'schedule.every', message: 'is not a duration' }]);
    return { kind: 'every', everyMs };
  }
  return { kind: 'at', at: Date.parse(schedule.at) };
}

export function windowOf(job: Pick<Job, 'startAt' | 'endAt' | 'createdAt'>): ScheduleWindow {
  return {
    anchorMs: job.startAt ?? job.createdAt,
    startAt: job.startAt ?? undefined,
    endAt: job.endAt ?? undefined,
  };
}

/**
 * The job's next occurrence strictly after `afterMs`, or null when it will not fire again. Throws
 * {@link ScheduleComputeError} when a cron instant cannot be computed: that is not an end.
 *
 * With an `exclusion` (the job's calendars), the next occurrence no calendar excludes: what
 * `nextRunAt` shows. Whether a job is done is always asked without one: calendars change, so an
 * occurrence excluded today may fire after a PATCH of its calendar, and the job must still be there.
 */
export function nextRunOf(job: Job, afterMs: number, runCount = 0, exclusion?: Exclusion): number | null {
  if (job.state !== 'active') return null;
  if (job.maxRuns !== null && runCount >= job.maxRuns) return null;
  const schedule = normalizedScheduleOf(job);
  if (exclusion && !exclusion.empty) return nextIncludedOccurrence(schedule, windowOf(job), afterMs, exclusion) ?? null;
  return nextOccurrence(schedule, windowOf(job), afterMs) ?? null;
}
