/**
 * Alerts when a job didn't run: the REST shapes, and the judgement of a job's occurrences. Pure:
 * the watch (apps/worker/src/alerts.ts, run by every api and worker process) reads runs and the
 * schedule from Postgres, hands them in here, and writes back what comes out.
 *
 * A job with `alertAfterMs` promises that each occurrence succeeds within that many ms of its
 * instant. Once that deadline has passed, each occurrence is judged:
 * - its run `succeeded`: fine, and it resolves an alert opened for an earlier occurrence;
 * - its run `failed`, went `dead`, is still `retrying` (an attempt failed), was `skipped` because
 *   of an overlap, or `missed` (late past its misfire grace): an alert opens, unless one is open;
 * - no run was recorded although the schedule named the instant: `not_fired` (the workers were
 *   down, Redis lost the scheduler, ...);
 * - skips the client asked for (a pause, a new version, a calendar's excluded day, and any reason
 *   not above) judge nothing, and an instant on a day the job's calendars exclude is not expected;
 * - a first attempt still in flight is judged when it ends (a callback is bounded by its timeout).
 */
import { Type, type Static } from 'typebox';
import { ALERT_REASONS, Id, Instant, Nullable, PageQuery, Ref, StringEnum, type AlertReason } from './schemas.ts';

export const ALERT_STATES = ['open', 'resolved'] as const;
export type AlertState = (typeof ALERT_STATES)[number];
export const ALERT_EVENTS = ['alert.opened', 'alert.resolved'] as const;
export type AlertEvent = (typeof ALERT_EVENTS)[number];

export const AlertSchema = Type.Object(
  {
    id: Id,
    jobId: Id,
    scheduledFor: { ...Instant, description: 'The instant of the occurrence that did not succeed in time.' },
    reason: StringEnum(ALERT_REASONS, {
      description:
        'Its run `failed` or went `dead` (or was still retrying at the deadline), was `skipped` (overlap) ' +
        'or `missed` (late past the misfire grace), or no run of it was recorded: `not_fired`.',
    }),
    openedAt: Instant,
    resolvedAt: Nullable({ ...Instant, description: 'When a later occurrence succeeded; null while open.' }),
  },
  { $id: 'Alert' },
);
export type AlertDto = Static<typeof AlertSchema>;

export const AlertListSchema = Type.Object(
  {
    items: Type.Array(Ref(AlertSchema)),
    nextCursor: Nullable(Type.String({ description: 'Pass it as `cursor` for the next page; null on the last page.' })),
  },
  { $id: 'AlertList' },
);

export const AlertListQuery = Type.Object(
  {
    ...PageQuery,
    state: Type.Optional(StringEnum(ALERT_STATES, { description: 'Only `open` or only `resolved` alerts.' })),
    jobId: Type.Optional(Type.String({ format: 'uuid', description: "Only this job's alerts." })),
  },
  { additionalProperties: false },
);

/** The body of a webhook call: Standard Webhooks' `{ type, timestamp, data }`. */
export interface AlertWebhookBody {
  type: AlertEvent;
  timestamp: string;
  data: AlertDto & { jobName: string };
}

/** Every named schema of the alerts API. */
export const ALERT_NAMED_SCHEMAS = [AlertSchema, AlertListSchema] as const;

/** A run of an occurrence (trigger `schedule`), as the watch reads it. */
export interface ObservedRun {
  scheduledFor: number;
  status: string;
  skipReason: string | null;
  attempts: number;
  startedAt: number | null;
}

/** How long a first attempt may stay in flight before it counts as failed (a run lost with Redis). */
export const STUCK_RUN_MS = 3_600_000;

type Verdict = { kind: 'ok' } | { kind: 'bad'; reason: AlertReason } | { kind: 'neutral' } | { kind: 'pending' };

/** What one run says about its occurrence, judged at `now`, after the occurrence's deadline. */
export function verdictOf(run: ObservedRun, now: number): Verdict {
  switch (run.status) {
    case 'succeeded':
      return { kind: 'ok' };
    case 'failed':
    case 'retrying':
      return { kind: 'bad', reason: 'failed' };
    case 'dead':
      return { kind: 'bad', reason: 'dead' };
    case 'skipped':
      if (run.skipReason === 'overlap') return { kind: 'bad', reason: 'skipped' };
      if (run.skipReason === 'missed') return { kind: 'bad', reason: 'missed' };
      return { kind: 'neutral' };
    case 'running':
      if (run.attempts > 1) return { kind: 'bad', reason: 'failed' };
      if (run.startedAt !== null && now - run.startedAt > STUCK_RUN_MS) return { kind: 'bad', reason: 'failed' };
      return { kind: 'pending' };
    default:
      return { kind: 'neutral' };
  }
}

export interface JudgeInput {
  now: number;
  /** Occurrences up to this instant have been judged already. */
  checkedUntil: number;
  /**
   * Judge occurrences up to this instant: the deadline (`now - alertAfterMs`), or less when the
   * caller's lists were cut short (both lists must be complete up to it).
   */
  horizon: number;
  /** Instants the schedule named in (checkedUntil, horizon] while it was due to fire, ascending. */
  expected: readonly number[];
  /** The scheduled runs in (checkedUntil, horizon], any order. */
  runs: readonly ObservedRun[];
  /** The job's open alert, if any. */
  open: { scheduledFor: number } | null;
}

export type JudgeStep =
  | { kind: 'open'; scheduledFor: number; reason: AlertReason }
  | { kind: 'resolve'; scheduledFor: number };

/**
 * Walks the occurrences in (checkedUntil, horizon] in time order: a bad one opens an alert when
 * none is open, a success after the open alert's occurrence resolves it. Returns the steps and
 * how far the occurrences are judged now (it stops before a first attempt still in flight).
 */
export function judgeOccurrences(input: JudgeInput): { steps: JudgeStep[]; checkedUntil: number } {
  const byInstant = new Map<number, ObservedRun>();
  for (const run of input.runs) {
    if (run.scheduledFor > input.checkedUntil && run.scheduledFor <= input.horizon)
      byInstant.set(run.scheduledFor, run);
  }
  const instants = new Set<number>(byInstant.keys());
  for (const at of input.expected) if (at > input.checkedUntil && at <= input.horizon) instants.add(at);
  const ordered = [...instants].sort((a, b) => a - b);
  const steps: JudgeStep[] = [];
  let open = input.open;
  for (const at of ordered) {
    const run = byInstant.get(at);
    const verdict: Verdict = run ? verdictOf(run, input.now) : { kind: 'bad', reason: 'not_fired' };
    if (verdict.kind === 'pending') return { steps, checkedUntil: at - 1 };
    if (verdict.kind === 'bad' && open === null) {
      steps.push({ kind: 'open', scheduledFor: at, reason: verdict.reason });
      open = { scheduledFor: at };
    } else if (verdict.kind === 'ok' && open !== null && at > open.scheduledFor) {
      steps.push({ kind: 'resolve', scheduledFor: at });
      open = null;
    }
  }
  return { steps, checkedUntil: Math.max(input.checkedUntil, input.horizon) };
}
