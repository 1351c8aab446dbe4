/**
 * The REST contract's shapes. These TypeBox schemas validate requests, describe them in the
 * OpenAPI document and give TypeScript its types: one source for all three.
 */
import { Type, type Static } from 'typebox';

/** A string enum, as JSON Schema `enum` (clearer in OpenAPI than a union of literals). */
export const StringEnum = <const T extends readonly string[]>(values: T, options: { description?: string } = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

export const Id = Type.String({ format: 'uuid', description: 'A UUID (v7: time-ordered).' });
export const Instant = Type.String({ format: 'date-time', description: 'ISO 8601, UTC.' });

export const FieldErrorSchema = Type.Object({
  field: Type.String({ description: 'JSON path of the field at fault, e.g. `schedule.cron`.' }),
  message: Type.String(),
});

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'A stable error code; see docs/errors.md.' }),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(FieldErrorSchema)),
    quota: Type.Optional(Type.String({ description: 'For `quota_exceeded`: the quota, `maxJobs` or `minIntervalMs`.' })),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (`application/problem+json`).' },
);

export const ScheduleSchema = Type.Object(
  {
    cron: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'A cron expression of 5 fields, or 6 with seconds first: `0 9 * * 1-5`.',
      }),
    ),
    timezone: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone for `cron` (default `UTC`).' }),
    ),
    every: Type.Optional(
      Type.String({ minLength: 2, maxLength: 20, description: 'A fixed interval: `30s`, `5m`, `1h`, `1d`.' }),
    ),
    everyMs: Type.Optional(Type.Integer({ minimum: 1, description: 'A fixed interval in ms (at least 1000).' })),
    at: Type.Optional(Type.String({ maxLength: 40, description: 'Once, at this ISO 8601 instant.' })),
  },
  {
    additionalProperties: false,
    description:
      'Exactly one of `cron` (with an optional `timezone`), `every`, `everyMs` or `at`. Intervals are phased from `startAt`, else from creation.',
  },
);

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

export const TargetSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048, description: 'An http or https URL.' }),
    method: Type.Optional(
      StringEnum(HTTP_METHODS, { description: 'Default `POST`.' }),
    ),
    headers: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ maxLength: 4096 }), {
        maxProperties: 50,
        description: 'Headers sent with every callback.',
      }),
    ),
    body: Type.Optional(
      Type.Unknown({
        description: 'Sent as is when a string, else as JSON (`content-type: application/json`).',
      }),
    ),
    timeoutMs: Type.Optional(
      Type.Integer({ minimum: 100, maximum: 300_000, description: 'Abort the callback after this (default 10000, at most 5 min).' }),
    ),
  },
  { additionalProperties: false },
);

export const RetryPolicySchema = Type.Object(
  {
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, description: 'Default 3.' })),
    backoff: Type.Optional(
      Type.Object(
        {
          type: Type.Optional(Type.Union([Type.Literal('exponential'), Type.Literal('fixed')])),
          delayMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 86_400_000, description: 'Default 1000.' })),
          maxDelayMs: Type.Optional(
            Type.Integer({ minimum: 100, maximum: 86_400_000, description: 'Default 3600000.' }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const MisfirePolicySchema = Type.Object(
  {
    policy: Type.Optional(Type.Union([Type.Literal('fire_once'), Type.Literal('skip')])),
    graceMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000, description: 'Default 60000.' })),
  },
  { additionalProperties: false },
);

const LabelsSchema = Type.Record(
  Type.String({ minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9._/-]+$' }),
  Type.String({ maxLength: 255 }),
  { maxProperties: 32, description: 'Your own key/value strings, for filtering.' },
);

const JobFields = {
  name: Type.String({
    minLength: 1,
    maxLength: 200,
    pattern: '^[A-Za-z0-9][A-Za-z0-9._:/-]*$',
    description: 'Unique within your service.',
  }),
  description: Type.String({ maxLength: 1000 }),
  labels: LabelsSchema,
  schedule: ScheduleSchema,
  target: TargetSchema,
  startAt: Instant,
  endAt: Instant,
  maxRuns: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
  jitterMs: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
  overlap: Type.Union([Type.Literal('allow'), Type.Literal('skip')]),
  misfire: MisfirePolicySchema,
  retry: RetryPolicySchema,
};

export const CreateJobBody = Type.Object(
  {
    name: JobFields.name,
    schedule: JobFields.schedule,
    target: JobFields.target,
    description: Type.Optional(JobFields.description),
    labels: Type.Optional(JobFields.labels),
    startAt: Type.Optional(JobFields.startAt),
    endAt: Type.Optional(JobFields.endAt),
    maxRuns: Type.Optional(JobFields.maxRuns),
    jitterMs: Type.Optional(JobFields.jitterMs),
    overlap: Type.Optional(JobFields.overlap),
    misfire: Type.Optional(JobFields.misfire),
    retry: Type.Optional(JobFields.retry),
    paused: Type.Optional(Type.Boolean({ description: 'Create the job paused.' })),
  },
  { additionalProperties: false },
);
export type CreateJobBody = Static<typeof CreateJobBody>;

export const JOB_STATES = ['active', 'paused', 'completed'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const RUN_STATUSES = ['running', 'retrying', 'succeeded', 'failed', 'dead', 'skipped'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const RUN_TRIGGERS = ['schedule', 'manual', 'replay'] as const;
export type RunTrigger = (typeof RUN_TRIGGERS)[number];
export const SKIP_REASONS = ['overlap', 'missed', 'paused', 'superseded'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export const JobSchema = Type.Object(
  {
    id: Id,
    name: Type.String(),
    description: Nullable(Type.String()),
    state: StringEnum(JOB_STATES),
    schedule: ScheduleSchema,
    target: TargetSchema,
    labels: LabelsSchema,
    startAt: Nullable(Instant),
    endAt: Nullable(Instant),
    maxRuns: Nullable(Type.Integer()),
    jitterMs: Type.Integer(),
    overlap: JobFields.overlap,
    misfire: Type.Object({ policy: Type.String(), graceMs: Type.Integer() }),
    retry: Type.Object({
      maxAttempts: Type.Integer(),
      backoff: Type.Object({ type: Type.String(), delayMs: Type.Integer(), maxDelayMs: Type.Integer() }),
    }),
    version: Type.Integer({ description: 'Goes up by one on every change; the ETag.' }),
    nextRunAt: Nullable(Instant),
    lastRunAt: Nullable(Instant),
    lastRunStatus: Nullable(Type.String()),
    runCount: Type.Integer(),
    createdAt: Instant,
    updatedAt: Instant,
  },
  { $id: 'Job' },
);
export type JobDto = Static<typeof JobSchema>;

export const RunSchema = Type.Object(
  {
    id: Id,
    jobId: Id,
    scheduledFor: Instant,
    trigger: StringEnum(RUN_TRIGGERS),
    status: StringEnum(RUN_STATUSES),
    skipReason: Nullable(Type.String()),
    attempts: Type.Integer(),
    startedAt: Nullable(Instant),
    finishedAt: Nullable(Instant),
    durationMs: Nullable(Type.Integer()),
    httpStatus: Nullable(Type.Integer()),
    error: Nullable(Type.String()),
    responseExcerpt: Nullable(Type.String({ description: 'The first 1 KiB of the response body.' })),
    replayOf: Nullable(Id),
    createdAt: Instant,
  },
  { $id: 'Run' },
);
export type RunDto = Static<typeof RunSchema>;

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Type.String({ maxLength: 200, description: 'The `nextCursor` of the previous page.' })),
};

export const JobListSchema = Type.Object({
  items: Type.Array(JobSchema),
  nextCursor: Nullable(Type.String()),
});
export const RunListSchema = Type.Object({
  items: Type.Array(RunSchema),
  nextCursor: Nullable(Type.String()),
});
