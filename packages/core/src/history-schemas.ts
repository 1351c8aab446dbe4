/**
 * The shapes of a job's version history, of pause-until and of skip (issue 16 §2, §4). Like
 * schemas.ts: one source for validation, the OpenAPI document and the types.
 */
import { Type, type Static } from 'typebox';
import { Id, Instant, JobSchema, Nullable, Ref, StringEnum } from './schemas.ts';

/** What a version-history entry records. */
export const JOB_CHANGES = ['create', 'patch', 'pause', 'resume', 'trigger', 'delete', 'skip'] as const;
export type JobChange = (typeof JOB_CHANGES)[number];

export const ACTOR_KINDS = ['key', 'admin'] as const;

/** Who made a change: an API key (its id), or the admin token (id `admin`). */
export interface Actor {
  kind: (typeof ACTOR_KINDS)[number];
  id: string;
}

/** The most occurrences one skip may name. */
export const MAX_SKIP_COUNT = 1_000;

export const ActorSchema = Type.Object(
  {
    kind: StringEnum(ACTOR_KINDS, { description: '`key`: a service API key; `admin`: the admin token.' }),
    id: Type.String({ description: 'The API key id (`apiKeyId`), or `admin`.' }),
  },
  { $id: 'Actor', description: 'Who made the change.' },
);

export const JobVersionSchema = Type.Object(
  {
    id: { ...Id, description: 'The entry id (time-ordered).' },
    version: Type.Integer({
      description:
        'The job’s `version` after the change. `trigger`, `skip` and `delete` do not change it; the others (except a ' +
        'change that changes nothing, which is not recorded) add one.',
    }),
    changedAt: Instant,
    change: StringEnum(JOB_CHANGES, { description: 'What was done to the job.' }),
    actor: Ref(ActorSchema),
    definition: Ref(JobSchema),
  },
  { $id: 'JobVersion', description: 'One change of a job, with the whole job as it stood after it.' },
);
export type JobVersionDto = Static<typeof JobVersionSchema>;

export const JobVersionListSchema = Type.Object(
  {
    items: Type.Array(Ref(JobVersionSchema)),
    nextCursor: Nullable(Type.String({ description: 'Pass it as `cursor` for the next page; null on the last page.' })),
  },
  { $id: 'JobVersionList' },
);

export const PauseJobBody = Type.Object(
  {
    until: Type.Optional(
      Type.String({
        format: 'date-time',
        description:
          'Resume by itself at this instant (in the future): occurrences from then on are delivered. Without it, the ' +
          'job stays paused until resumed.',
        examples: ['2030-01-02T00:00:00Z'],
      }),
    ),
  },
  { $id: 'PauseJobRequest', additionalProperties: false },
);
export type PauseJobBody = Static<typeof PauseJobBody>;

export const SkipJobBody = Type.Object(
  {
    count: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_SKIP_COUNT,
        description: 'Skip the next this many occurrences (as the schedule stands now); 0 ends a skip in force.',
        examples: [1],
      }),
    ),
    until: Type.Optional(
      Type.String({
        format: 'date-time',
        description: 'Skip every occurrence scheduled before this instant (in the future).',
        examples: ['2030-01-02T00:00:00Z'],
      }),
    ),
  },
  {
    $id: 'SkipJobRequest',
    additionalProperties: false,
    description: 'Exactly one of `count` or `until`. A skip replaces the one in force, if any.',
  },
);
export type SkipJobBody = Static<typeof SkipJobBody>;

export const HISTORY_NAMED_SCHEMAS = [
  ActorSchema,
  JobVersionSchema,
  JobVersionListSchema,
  PauseJobBody,
  SkipJobBody,
] as const;
