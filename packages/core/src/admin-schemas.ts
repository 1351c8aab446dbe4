/**
 * The admin API's shapes (`/v1/admin/*`, ADMIN_TOKEN only): services, their quotas, their API
 * keys and signing secrets. Like schemas.ts, one source for validation, OpenAPI and types.
 */
import { Type, type Static } from 'typebox';
import { Id, Instant, Nullable, Ref, StringEnum } from './schemas.ts';

export const API_KEY_SCOPES = ['jobs:read', 'jobs:write'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export const DEFAULT_QUOTAS = { maxJobs: 10_000, minIntervalMs: 1_000 } as const;

export const QuotasSchema = Type.Object(
  {
    maxJobs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1_000_000,
        description: `Jobs the service may hold (default ${DEFAULT_QUOTAS.maxJobs}).`,
      }),
    ),
    minIntervalMs: Type.Optional(
      Type.Integer({
        minimum: 1_000,
        maximum: 86_400_000,
        description: `The shortest interval its schedules may have, in ms (default ${DEFAULT_QUOTAS.minIntervalMs}).`,
      }),
    ),
  },
  { $id: 'QuotasInput', additionalProperties: false },
);
export type QuotasInput = Static<typeof QuotasSchema>;

const ServiceName = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });

export const CreateServiceBody = Type.Object(
  { name: ServiceName, quotas: Type.Optional(Ref(QuotasSchema)) },
  { $id: 'CreateServiceRequest', additionalProperties: false },
);
export type CreateServiceBody = Static<typeof CreateServiceBody>;

const ALERT_WEBHOOK_DOC =
  'Where alerts of its jobs are sent (`alert.opened`, `alert.resolved`), signed like callbacks ' +
  'and held to the same destination rules; null stops sending.';

export const UpdateServiceBody = Type.Object(
  {
    quotas: Type.Optional(Ref(QuotasSchema)),
    alertWebhookUrl: Type.Optional(
      Nullable(Type.String({ minLength: 1, maxLength: 2048, description: ALERT_WEBHOOK_DOC })),
    ),
  },
  {
    $id: 'UpdateServiceRequest',
    additionalProperties: false,
    description: 'Only the fields given change: the quotas given, and `alertWebhookUrl` when it is sent.',
  },
);
export type UpdateServiceBody = Static<typeof UpdateServiceBody>;

const Quotas = Type.Object({ maxJobs: Type.Integer(), minIntervalMs: Type.Integer() }, { $id: 'Quotas' });

export const ServiceSchema = Type.Object(
  {
    id: Id,
    name: Type.String(),
    quotas: Ref(Quotas),
    createdAt: Instant,
    disabledAt: Nullable(Instant),
    previousSecretExpiresAt: Nullable(Instant),
    alertWebhookUrl: Nullable(Type.String({ description: ALERT_WEBHOOK_DOC })),
  },
  { $id: 'Service' },
);
export type ServiceDto = Static<typeof ServiceSchema>;

export const CreatedServiceSchema = Type.Object(
  {
    id: Id,
    name: Type.String(),
    quotas: Ref(Quotas),
    apiKey: Type.String({ description: 'Shown once: only its hash is stored.' }),
    apiKeyId: Id,
    signingSecret: Type.String({ description: 'The `whsec_` secret that signs callbacks. Shown once.' }),
    createdAt: Instant,
  },
  { $id: 'CreatedService' },
);

export const ServiceListSchema = Type.Object(
  {
    items: Type.Array(Ref(ServiceSchema)),
    nextCursor: Nullable(Type.String({ description: 'Pass it as `cursor` for the next page; null on the last page.' })),
  },
  { $id: 'ServiceList' },
);

export const ApiKeySchema = Type.Object(
  {
    id: Id,
    prefix: Type.String({ description: 'The first characters of the key, to recognise it.' }),
    scopes: Type.Array(StringEnum(API_KEY_SCOPES)),
    createdAt: Instant,
    lastUsedAt: Nullable(Instant),
    expiresAt: Nullable(Instant),
    revokedAt: Nullable(Instant),
  },
  { $id: 'ApiKey' },
);

export const ServiceDetailSchema = Type.Object(
  { ...ServiceSchema.properties, keys: Type.Array(Ref(ApiKeySchema)) },
  { $id: 'ServiceDetail' },
);

export const CreateKeyBody = Type.Object(
  {
    scopes: Type.Optional(
      Type.Array(StringEnum(API_KEY_SCOPES), {
        minItems: 1,
        maxItems: 2,
        uniqueItems: true,
        description: 'Default both.',
      }),
    ),
    expiresAt: Type.Optional(
      Type.String({ format: 'date-time', maxLength: 40, description: 'After this the key fails with 401.' }),
    ),
  },
  { $id: 'CreateKeyRequest', additionalProperties: false },
);
export type CreateKeyBody = Static<typeof CreateKeyBody>;

export const CreatedKeySchema = Type.Object(
  {
    apiKeyId: { ...Id, description: 'The key id, as in the answer that creates a service.' },
    id: {
      ...Id,
      deprecated: true,
      description: 'The same as `apiKeyId`, kept for clients written before it; use `apiKeyId`.',
    },
    apiKey: Type.String({ description: 'Shown once: only its hash is stored.' }),
    prefix: Type.String(),
    scopes: Type.Array(StringEnum(API_KEY_SCOPES)),
    expiresAt: Nullable(Instant),
    createdAt: Instant,
  },
  { $id: 'CreatedKey' },
);

export const RotatedSecretSchema = Type.Object(
  {
    signingSecret: Type.String({ description: 'The new `whsec_` secret. Shown once.' }),
    previousSecretExpiresAt: Instant,
  },
  { $id: 'RotatedSecret' },
);

/** Every named schema of the admin API. */
export const ADMIN_NAMED_SCHEMAS = [
  QuotasSchema,
  Quotas,
  CreateServiceBody,
  UpdateServiceBody,
  ServiceSchema,
  CreatedServiceSchema,
  ServiceListSchema,
  ApiKeySchema,
  ServiceDetailSchema,
  CreateKeyBody,
  CreatedKeySchema,
  RotatedSecretSchema,
] as const;
