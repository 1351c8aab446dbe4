/**
 * The REST contract's shapes. These TypeBox schemas validate requests, describe them in the
 * OpenAPI document and give TypeScript its types: one source for all three.
 *
 * A schema with an `$id` is a named one (`components.schemas` of the OpenAPI document): every
 * other schema points at it with `Ref`, never a copy, and the api registers each of
 * `NAMED_SCHEMAS` once (validation and serialization resolve the references from there).
 */
import { Type, type Static, type TSchema } from 'typebox';

/** A string enum, as JSON Schema `enum` (clearer in OpenAPI than a union of literals). */
export const StringEnum = <const T extends readonly string[]>(values: T, options: { description?: string } = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });

/**
 * `schema` or null, spelled `type: [X, 'null']` (an enum takes null too) rather than `anyOf`: one
 * type check instead of a validation per branch, and a serializer that needs no validator to
 * choose one. `schema` must have one `type`.
 */
export function Nullable<T extends TSchema>(schema: T) {
  const { type, enum: values } = schema as { type?: unknown; enum?: unknown[] };
  if (typeof type !== 'string') throw new TypeError('Nullable takes a schema of one type');
  return Type.Unsafe<Static<T> | null>({
    ...schema,
    type: [type, 'null'],
    ...(values === undefined ? {} : { enum: [...values, null] }),
  });
}

/** A reference to a named schema (one with an `$id`), typed as the schema itself. */
export function Ref<T extends TSchema>(schema: T, annotations: { examples?: unknown[] } = {}) {
  const { $id } = schema as { $id?: string };
  if ($id === undefined) throw new TypeError('Ref takes a named schema (one with an $id)');
  return Type.Unsafe<Static<T>>({ $ref: $id, ...annotations });
}

export const Id = Type.String({ format: 'uuid', description: 'A UUID (v7: time-ordered).' });
export const Instant = Type.String({ format: 'date-time', description: 'ISO 8601, UTC.' });

export const FieldErrorSchema = Type.Object(
  {
    field: Type.String({ description: 'JSON path of the field at fault, e.g. `schedule.cron`.' }),
    message: Type.String(),
  },
  { $id: 'FieldError' },
);

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'A stable error code; see docs/errors.md.' }),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Ref(FieldErrorSchema))),
    quota: Type.Optional(
      Type.String({ description: 'For `quota_exceeded`: the quota, `maxJobs` or `minIntervalMs`.' }),
    ),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (`application/problem+json`).' },
);

const MAX_RUNS_DOC = 'The job is `completed` after this many scheduled runs (manual runs and replays do not count).';
const JITTER_DOC =
  'Delay each scheduled occurrence by up to this many ms, the same for one occurrence on every retry (default 0).';
const MISFIRE_DOC = 'What happens to an occurrence that starts late (workers down, Redis rebuilt).';
const ALERT_AFTER_DOC =
  'Open an alert when an occurrence has not succeeded this many ms after its instant: it failed, went dead, ' +
  'was skipped or missed, or never fired (1 s to 30 days, more than `jitterMs`; null: no alerts). ' +
  'See `GET /v1/alerts`.';
const RETRY_DOC = '408, 429, 5xx, timeouts and connection errors are retried; other 4xx and 3xx fail at once.';

const CronScheduleSchema = Type.Object(
  {
    cron: Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'A cron expression of 5 fields, or 6 with seconds first.',
      examples: ['0 9 * * 1-5'],
    }),
    timezone: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: 'IANA time zone of `cron` (default `UTC`).',
        examples: ['Europe/Berlin'],
      }),
    ),
  },
  { $id: 'CronSchedule', additionalProperties: false, description: 'At the instants a cron expression names.' },
);
const EveryScheduleSchema = Type.Object(
  {
    every: Type.String({
      minLength: 2,
      maxLength: 20,
      description: 'A fixed interval: `30s`, `5m`, `1h`, `1d`.',
      examples: ['5m'],
    }),
  },
  { $id: 'EverySchedule', additionalProperties: false, description: 'At a fixed interval, as a duration.' },
);
const EveryMsScheduleSchema = Type.Object(
  { everyMs: Type.Integer({ minimum: 1, description: 'A fixed interval in ms (at least 1000).', examples: [60000] }) },
  { $id: 'EveryMsSchedule', additionalProperties: false, description: 'At a fixed interval, in ms.' },
);
const AtScheduleSchema = Type.Object(
  {
    at: Type.String({
      maxLength: 40,
      description: 'Once, at this ISO 8601 instant (with a time zone, in the future).',
      examples: ['2030-01-01T09:00:00Z'],
    }),
  },
  { $id: 'AtSchedule', additionalProperties: false, description: 'Once.' },
);

/** Exactly one of the four forms: `oneOf`, so that neither validation nor a generated client takes `{}`. */
export const ScheduleSchema = Type.Unsafe<
  | Static<typeof CronScheduleSchema>
  | Static<typeof EveryScheduleSchema>
  | Static<typeof EveryMsScheduleSchema>
  | Static<typeof AtScheduleSchema>
>({
  $id: 'Schedule',
  oneOf: [Ref(CronScheduleSchema), Ref(EveryScheduleSchema), Ref(EveryMsScheduleSchema), Ref(AtScheduleSchema)],
  description:
    'Exactly one of `cron` (with an optional `timezone`), `every`, `everyMs` or `at`. Intervals are phased from ' +
    '`startAt`, else from creation.',
});

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

export const TargetSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048, description: 'An http or https URL.' }),
    method: Type.Optional(StringEnum(HTTP_METHODS, { description: 'Default `POST`.' })),
    headers: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ maxLength: 4096 }), {
        maxProperties: 50,
        description: 'Headers sent with every callback.',
      }),
    ),
    body: Type.Optional(
      Type.Unknown({
        description:
          'The callback body, kept byte for byte as you send it: a string goes as is (`content-type: text/plain; ' +
          'charset=utf-8`), anything else as its JSON text (`application/json`), unless `headers` names a ' +
          '`content-type`.',
      }),
    ),
    timeoutMs: Type.Optional(
      Type.Integer({
        minimum: 100,
        maximum: 300_000,
        description: 'Abort the callback after this (default 10000, at most 5 min).',
      }),
    ),
  },
  { $id: 'Target', additionalProperties: false, description: 'The HTTP request each occurrence makes.' },
);

export const RetryPolicySchema = Type.Object(
  {
    maxAttempts: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 20,
        description: 'Attempts in all, the first included (default 3); then the run is `dead`.',
      }),
    ),
    backoff: Type.Optional(
      Type.Object(
        {
          type: Type.Optional(
            StringEnum(['exponential', 'fixed'] as const, {
              description: '`exponential` (default) doubles from `delayMs` with jitter; `fixed` waits `delayMs`.',
            }),
          ),
          delayMs: Type.Optional(
            Type.Integer({ minimum: 100, maximum: 86_400_000, description: 'The first delay (default 1000).' }),
          ),
          maxDelayMs: Type.Optional(
            Type.Integer({
              minimum: 100,
              maximum: 86_400_000,
              description: 'No delay is longer, `Retry-After` included (default 3600000).',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { $id: 'RetryPolicy', additionalProperties: false, description: RETRY_DOC },
);

export const MisfirePolicySchema = Type.Object(
  {
    policy: Type.Optional(
      StringEnum(['fire_once', 'skip'] as const, {
        description: 'A late occurrence is delivered once (`fire_once`, default) or recorded `skipped` (`missed`).',
      }),
    ),
    graceMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 86_400_000,
        description: 'How late an occurrence may start and still count as on time (default 60000).',
      }),
    ),
  },
  { $id: 'MisfirePolicy', additionalProperties: false, description: MISFIRE_DOC },
);

const LabelKey = Type.String({ minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9._/-]+$' });
const LabelsSchema = Type.Record(LabelKey, Type.String({ maxLength: 255 }), {
  maxProperties: 32,
  description: 'Your own key/value strings, for filtering.',
});

const JobFields = {
  name: Type.String({
    minLength: 1,
    maxLength: 200,
    pattern: '^[A-Za-z0-9][A-Za-z0-9._:/-]*$',
    description: 'Unique within your service.',
  }),
  description: Type.String({ maxLength: 1000, description: 'Free text for people.' }),
  labels: LabelsSchema,
  schedule: Ref(ScheduleSchema),
  target: Ref(TargetSchema),
  startAt: Type.String({
    format: 'date-time',
    description: 'Nothing fires before this instant; an interval is phased from it.',
  }),
  endAt: Type.String({
    format: 'date-time',
    description: 'Nothing fires after this instant; the job is `completed` once it has passed.',
  }),
  maxRuns: Type.Integer({
    minimum: 1,
    maximum: 1_000_000_000,
    description: MAX_RUNS_DOC,
  }),
  jitterMs: Type.Integer({
    minimum: 0,
    maximum: 3_600_000,
    description: JITTER_DOC,
  }),
  overlap: StringEnum(['allow', 'skip'] as const, {
    description:
      '`allow` (default): runs may overlap. `skip`: an occurrence due while a run of this job is in flight is ' +
      'recorded `skipped` (`overlap`).',
  }),
  misfire: Ref(MisfirePolicySchema),
  retry: Ref(RetryPolicySchema),
  calendars: Type.Array(Id, {
    maxItems: 10,
    description:
      'Exclusion calendars (`/v1/calendars`) of your service: an occurrence on a day one of them excludes is ' +
      'recorded `skipped` (`excluded`) and not delivered.',
  }),
  alertAfterMs: Type.Integer({
    minimum: 1_000,
    maximum: 30 * 86_400_000,
    description: ALERT_AFTER_DOC,
    examples: [600_000],
  }),
};

export const CreateJobBody = Type.Object(
  {
    name: JobFields.name,
    schedule: JobFields.schedule,
    target: JobFields.target,
    description: Type.Optional(Nullable(JobFields.description)),
    labels: Type.Optional(JobFields.labels),
    startAt: Type.Optional(Nullable(JobFields.startAt)),
    endAt: Type.Optional(Nullable(JobFields.endAt)),
    maxRuns: Type.Optional(Nullable(JobFields.maxRuns)),
    jitterMs: Type.Optional(JobFields.jitterMs),
    overlap: Type.Optional(JobFields.overlap),
    misfire: Type.Optional(JobFields.misfire),
    retry: Type.Optional(JobFields.retry),
    calendars: Type.Optional(JobFields.calendars),
    alertAfterMs: Type.Optional(Nullable(JobFields.alertAfterMs)),
    paused: Type.Optional(Type.Boolean({ description: 'Create the job paused.' })),
  },
  {
    $id: 'CreateJobRequest',
    additionalProperties: false,
    description: 'A job read back (`GET`) without its read-only fields can be sent here as it is; null means unset.',
  },
);
export type CreateJobBody = Static<typeof CreateJobBody>;

/** Merge patch of a target: a header set to null is removed; `body` is replaced whole (null removes it). */
const TargetPatchSchema = Type.Object(
  {
    url: Type.Optional(TargetSchema.properties.url),
    method: Type.Optional(StringEnum(HTTP_METHODS, { description: 'The HTTP method of the callback.' })),
    headers: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Nullable(Type.String({ maxLength: 4096 })), {
        maxProperties: 50,
        description: 'Merged into the stored headers; a header set to null is removed.',
      }),
    ),
    body: Type.Optional(Type.Unknown({ description: 'Replaces the stored body, byte for byte; null removes it.' })),
    timeoutMs: Type.Optional(TargetSchema.properties.timeoutMs),
  },
  { $id: 'TargetPatch', additionalProperties: false, description: 'Merged into the stored target.' },
);

export const PatchJobBody = Type.Object(
  {
    name: Type.Optional(JobFields.name),
    schedule: Type.Optional(JobFields.schedule),
    target: Type.Optional(Ref(TargetPatchSchema)),
    description: Type.Optional(Nullable(JobFields.description)),
    labels: Type.Optional(
      Type.Record(LabelKey, Nullable(Type.String({ maxLength: 255 })), {
        maxProperties: 32,
        description: 'Merged into the stored labels; a label set to null is removed.',
      }),
    ),
    startAt: Type.Optional(Nullable(JobFields.startAt)),
    endAt: Type.Optional(Nullable(JobFields.endAt)),
    maxRuns: Type.Optional(Nullable(JobFields.maxRuns)),
    jitterMs: Type.Optional(JobFields.jitterMs),
    overlap: Type.Optional(JobFields.overlap),
    misfire: Type.Optional(JobFields.misfire),
    retry: Type.Optional(JobFields.retry),
    calendars: Type.Optional(Nullable(JobFields.calendars)),
    alertAfterMs: Type.Optional(Nullable(JobFields.alertAfterMs)),
  },
  {
    $id: 'PatchJobRequest',
    additionalProperties: false,
    description:
      'JSON Merge Patch (RFC 7396): fields you send replace the stored ones, objects merge, null removes. `schedule` ' +
      'and `target.body` are replaced whole.',
  },
);
export type PatchJobBody = Static<typeof PatchJobBody>;

export const MarkedOccurrenceSchema = Type.Object(
  {
    at: Instant,
    excluded: Type.Boolean({ description: 'A calendar excludes this day: it is recorded `skipped` (`excluded`).' }),
  },
  { $id: 'MarkedOccurrence' },
);

export const NextRunsSchema = Type.Object(
  {
    nextRuns: Type.Array(Instant, {
      description: 'The coming times that fire, earliest first: days the calendars exclude are left out.',
    }),
    occurrences: Type.Optional(
      Type.Array(Ref(MarkedOccurrenceSchema), {
        description:
          'Only with `includeExcluded`: the next `count` occurrences of the schedule, excluded ones too, each ' +
          'marked; `nextRuns` is then those not excluded.',
      }),
    ),
  },
  { $id: 'NextRuns' },
);

export const SchedulePreviewBody = Type.Object(
  {
    schedule: Ref(ScheduleSchema),
    startAt: Type.Optional(JobFields.startAt),
    endAt: Type.Optional(JobFields.endAt),
    count: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'How many times (default 10).' }),
    ),
    calendars: Type.Optional(JobFields.calendars),
    includeExcluded: Type.Optional(
      Type.Boolean({ description: 'Also list the occurrences the calendars exclude, marked (`occurrences`).' }),
    ),
  },
  { $id: 'SchedulePreviewRequest', additionalProperties: false },
);
export type SchedulePreviewBody = Static<typeof SchedulePreviewBody>;

export const JOB_STATES = ['active', 'paused', 'completed'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const RUN_STATUSES = ['running', 'retrying', 'succeeded', 'failed', 'dead', 'skipped'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const RUN_TRIGGERS = ['schedule', 'manual', 'replay'] as const;
export type RunTrigger = (typeof RUN_TRIGGERS)[number];
/**
 * Why a `skipped` run was not delivered; one list for every feature that skips: `requested` is a
 * skip asked for (POST /v1/jobs/{id}/skip), `excluded` a day an exclusion calendar leaves out.
 */
export const SKIP_REASONS = ['overlap', 'missed', 'paused', 'superseded', 'requested', 'excluded'] as const;
/**
 * Why an alert opened: the occurrence's run `failed` or went `dead`, was `skipped` (an overlap) or
 * `missed` (late past its grace), or no run of it was recorded at all (`not_fired`).
 */
export const ALERT_REASONS = ['failed', 'dead', 'skipped', 'missed', 'not_fired'] as const;
export type AlertReason = (typeof ALERT_REASONS)[number];
export type SkipReason = (typeof SKIP_REASONS)[number];

/** Fields the server sets: a job read back and sent again to create or PATCH leaves them out. */
const readOnly = <T extends TSchema>(schema: T) => ({ ...schema, readOnly: true }) as T;

export const JobSchema = Type.Object(
  {
    id: readOnly(Id),
    name: Type.String({ description: 'Unique within your service.' }),
    description: Nullable(Type.String({ description: 'Free text for people.' })),
    state: readOnly(
      StringEnum(JOB_STATES, {
        description:
          '`active` fires; `paused` fires nothing until resumed (pause, resume); `completed` will not fire again ' +
          '(one-shot done, `endAt` passed or `maxRuns` reached).',
      }),
    ),
    schedule: Ref(ScheduleSchema),
    target: Ref(TargetSchema),
    labels: LabelsSchema,
    startAt: Nullable({ ...JobFields.startAt }),
    endAt: Nullable({ ...JobFields.endAt }),
    maxRuns: Nullable(Type.Integer({ description: MAX_RUNS_DOC })),
    jitterMs: Type.Integer({ description: JITTER_DOC }),
    overlap: JobFields.overlap,
    misfire: Type.Object(
      {
        policy: StringEnum(['fire_once', 'skip'] as const, {
          description: 'Deliver a late occurrence once (`fire_once`) or skip it (`skip`).',
        }),
        graceMs: Type.Integer({ description: 'How late an occurrence may start and still count as on time.' }),
      },
      { description: MISFIRE_DOC },
    ),
    retry: Type.Object(
      {
        maxAttempts: Type.Integer({ description: 'Attempts in all, the first included; then the run is `dead`.' }),
        backoff: Type.Object({
          type: StringEnum(['exponential', 'fixed'] as const, {
            description: '`exponential` doubles from `delayMs` with jitter; `fixed` waits `delayMs`.',
          }),
          delayMs: Type.Integer({ description: 'The first delay.' }),
          maxDelayMs: Type.Integer({ description: 'No delay is longer, `Retry-After` included.' }),
        }),
      },
      { description: RETRY_DOC },
    ),
    calendars: Type.Array(Id, { description: 'The exclusion calendars the job honours.' }),
    version: readOnly(Type.Integer({ description: 'Goes up by one on every change; the ETag is `W/"<version>"`.' })),
    nextRunAt: readOnly(
      Nullable({
        ...Instant,
        description:
          'The next scheduled occurrence, a day its calendars exclude left out; null when the job will not fire ' +
          '(paused, completed).',
      }),
    ),
    lastRunAt: readOnly(Nullable({ ...Instant, description: 'When the latest run recorded an outcome.' })),
    lastRunStatus: readOnly(Nullable(StringEnum(RUN_STATUSES, { description: 'The status of that run.' }))),
    runCount: readOnly(
      Type.Integer({
        description: 'Scheduled runs so far (skipped ones excluded); `maxRuns` counts against it.',
      }),
    ),
    pausedUntil: readOnly(
      Nullable({
        ...Instant,
        description: 'A paused job resumes by itself at this instant (POST /pause with `until`); null otherwise.',
      }),
    ),
    skipUntil: readOnly(
      Nullable({
        ...Instant,
        description:
          'Occurrences scheduled before this instant are recorded `skipped` (`requested`) and not delivered (POST ' +
          '/skip); null when no skip is in force.',
      }),
    ),
    createdAt: readOnly(Instant),
    updatedAt: readOnly(Instant),
    alertAfterMs: Nullable(Type.Integer({ description: ALERT_AFTER_DOC })),
    alert: readOnly(
      Nullable(
        Type.Object(
          {
            id: { ...Id, description: 'The alert, as `GET /v1/alerts/{id}` shows it.' },
            reason: StringEnum(ALERT_REASONS, { description: 'Why it opened.' }),
            openedAt: Instant,
          },
          { description: "The job's open alert; null when none is open." },
        ),
      ),
    ),
  },
  { $id: 'Job' },
);
export type JobDto = Static<typeof JobSchema>;

export const RunSchema = Type.Object(
  {
    id: { ...Id, description: 'The run id; sent as `webhook-id` on every attempt.' },
    jobId: Id,
    scheduledFor: {
      ...Instant,
      description:
        'The instant the schedule named (for manual runs and replays, when asked for); sent as ' +
        '`tickwork-scheduled-for`.',
    },
    trigger: StringEnum(RUN_TRIGGERS, {
      description: '`schedule`, `manual` (run now) or `replay` (of a dead or failed run).',
    }),
    status: StringEnum(RUN_STATUSES, {
      description:
        '`running` → `succeeded` | `retrying` → … | `failed` (not retryable) | `dead` (attempts exhausted); or ' +
        '`skipped`.',
    }),
    skipReason: Nullable(StringEnum(SKIP_REASONS, { description: 'Why a `skipped` run was not delivered.' })),
    attempts: Type.Integer({ description: 'Attempts made so far (`tickwork-attempt` of the latest).' }),
    startedAt: Nullable({ ...Instant, description: 'When the first attempt started.' }),
    finishedAt: Nullable({ ...Instant, description: 'When the run ended.' }),
    durationMs: Nullable(Type.Integer({ description: 'How long the latest attempt took.' })),
    httpStatus: Nullable(Type.Integer({ description: "The latest attempt's HTTP status." })),
    error: Nullable(Type.String({ description: 'Why the latest attempt did not succeed.' })),
    responseExcerpt: Nullable(Type.String({ description: 'The first 1 KiB of the response body.' })),
    replayOf: Nullable({ ...Id, description: 'For a replay: the run it delivers again.' }),
    createdAt: Instant,
  },
  { $id: 'Run' },
);
export type RunDto = Static<typeof RunSchema>;

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Type.String({ maxLength: 200, description: 'The `nextCursor` of the previous page.' })),
};

/** The query of every run list: a page, and optionally one status. */
export const RunListQuery = Type.Object(
  { ...PageQuery, status: Type.Optional(StringEnum(RUN_STATUSES)) },
  { additionalProperties: false },
);

const NextCursor = Nullable(
  Type.String({ description: 'Pass it as `cursor` for the next page; null on the last page.' }),
);
export const JobListSchema = Type.Object(
  { items: Type.Array(Ref(JobSchema)), nextCursor: NextCursor },
  { $id: 'JobList' },
);
export const RunListSchema = Type.Object(
  { items: Type.Array(Ref(RunSchema)), nextCursor: NextCursor },
  { $id: 'RunList' },
);

const CheckSchema = Type.Object(
  {
    status: StringEnum(['ok', 'down'] as const),
    error: Type.Optional(Type.String({ description: 'Why it is down.' })),
  },
  { $id: 'Check' },
);
export const LivenessSchema = Type.Object({ status: StringEnum(['ok'] as const) }, { $id: 'Liveness' });
export const ReplicaCheckSchema = Type.Object(
  {
    status: StringEnum(['ok', 'degraded'] as const, {
      description: 'degraded: every read goes to the primary; the api still serves (never 503 for it).',
    }),
    reason: Type.Optional(Type.String({ description: 'Why it is degraded.' })),
    lagSeconds: Type.Union([Type.Number(), Type.Null()], {
      description: 'How old the newest primary state the replica holds is (null: unknown).',
    }),
  },
  { $id: 'ReplicaCheck' },
);
export const ReadinessSchema = Type.Object(
  {
    status: StringEnum(['ok', 'unavailable'] as const),
    checks: Type.Object({
      postgres: Ref(CheckSchema),
      redis: Ref(CheckSchema),
      // Only when DATABASE_READ_URL is set.
      replica: Type.Optional(Ref(ReplicaCheckSchema)),
    }),
  },
  { $id: 'Readiness' },
);

/** Every named schema of the job API and the probes, each referenced rather than copied. */
export const NAMED_SCHEMAS = [
  FieldErrorSchema,
  ProblemSchema,
  CronScheduleSchema,
  EveryScheduleSchema,
  EveryMsScheduleSchema,
  AtScheduleSchema,
  ScheduleSchema,
  TargetSchema,
  TargetPatchSchema,
  RetryPolicySchema,
  MisfirePolicySchema,
  CreateJobBody,
  PatchJobBody,
  SchedulePreviewBody,
  MarkedOccurrenceSchema,
  NextRunsSchema,
  JobSchema,
  JobListSchema,
  RunSchema,
  RunListSchema,
  CheckSchema,
  LivenessSchema,
  ReplicaCheckSchema,
  ReadinessSchema,
] as const;
