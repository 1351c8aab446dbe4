/**
 * Operators' routes (ADMIN_TOKEN only): services (tenants), their quotas, API keys and signing
 * secrets. Secrets are shown once, in the response that makes them; the database keeps only a
 * key's SHA-256 and a signing secret sealed with SECRET_KEY.
 *
 * Disabling a service refuses its keys at once (the key lookup joins the service) and removes its
 * jobs' schedules from BullMQ; enabling registers them again. Both go through the jobs service
 * tier (`services/jobs.ts`), which keeps Postgres and Redis in step.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  API_KEY_SCOPES,
  CreateKeyBody,
  CreateServiceBody,
  CreatedKeySchema,
  CreatedServiceSchema,
  PageQuery,
  ProblemSchema,
  Ref,
  RotatedSecretSchema,
  ServiceDetailSchema,
  ServiceListSchema,
  ServiceSchema,
  TickworkError,
  UpdateServiceBody,
  destinationRefusal,
  displayPrefixOf,
  encryptSecret,
  generateApiKey,
  generateSigningSecret,
  hashApiKey,
  uuidv7,
  validationError,
  type OutboundPolicy,
  type ServiceDto,
} from '@tickwork/core';
import {
  findServiceById,
  insertApiKey,
  insertService,
  isUniqueViolation,
  listKeysOfService,
  listServices,
  revokeApiKey,
  rotateSigningSecret,
  setAlertWebhookUrl,
  updateServiceQuotas,
  type ApiKeyRow,
  type ServiceRow,
} from '@tickwork/db';
import { success } from '../../../plugins/swagger.ts';
import { afterIdOf } from '../jobs/shared.ts';

export interface AdminRoutesOptions {
  secretKey: string;
}

/** How long callbacks carry the previous signature after a rotation. */
const PREVIOUS_SECRET_GRACE_MS = 24 * 3_600_000;

const ServiceParams = Type.Object({ id: Type.String({ format: 'uuid' }) });
const KeyParams = Type.Object({ id: Type.String({ format: 'uuid' }), keyId: Type.String({ format: 'uuid' }) });

function serviceDto(row: ServiceRow): ServiceDto {
  return {
    id: row.id,
    name: row.name,
    quotas: { maxJobs: row.max_jobs, minIntervalMs: row.min_interval_ms },
    createdAt: row.created_at.toISOString(),
    disabledAt: row.disabled_at?.toISOString() ?? null,
    previousSecretExpiresAt: row.previous_secret_expires_at?.toISOString() ?? null,
    alertWebhookUrl: row.alert_webhook_url ?? null,
  };
}

function keyDto(row: ApiKeyRow) {
  return {
    id: row.id,
    prefix: row.prefix,
    scopes: row.scopes as Array<(typeof API_KEY_SCOPES)[number]>,
    createdAt: row.created_at.toISOString(),
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
    expiresAt: row.expires_at?.toISOString() ?? null,
    revokedAt: row.revoked_at?.toISOString() ?? null,
  };
}

/**
 * An alert webhook URL is held to the rules of a callback's `target.url`: http or https, no
 * credentials, and a destination the outbound policy allows (the sender checks the resolved
 * address again when it connects, with the callbacks' own guard).
 */
function checkAlertWebhookUrl(app: { outboundPolicy: OutboundPolicy }, raw: string): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw validationError([{ field: 'alertWebhookUrl', message: 'is not a valid URL' }]);
  }
  const refusal = destinationRefusal(app.outboundPolicy, url);
  if (refusal !== undefined) {
    throw validationError([{ field: 'alertWebhookUrl', message: `is not an allowed destination: ${refusal}` }]);
  }
}

function notFound(id: string): TickworkError {
  return new TickworkError('not_found', `No service ${id}.`);
}

const admin: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, options) => {
  app.post(
    '/admin/services',
    {
      schema: {
        tags: ['admin'],
        operationId: 'createService',
        summary: 'Create a service (a tenant) and its first API key',
        description: 'The API key and signing secret are shown once, in this response only.',
        body: Ref(CreateServiceBody),
        response: {
          201: success(Ref(CreatedServiceSchema), 'The service, with its first key and signing secret.', 'Location'),
          409: Ref(ProblemSchema),
        },
      },
    },
    async (request, reply) => {
      const apiKey = generateApiKey();
      const signingSecret = generateSigningSecret();
      const id = uuidv7();
      const { service, key } = await app.db
        .transaction()
        .execute(async (trx) => {
          const row = await insertService(trx, {
            id,
            name: request.body.name,
            signingSecret: encryptSecret(signingSecret, options.secretKey),
            maxJobs: request.body.quotas?.maxJobs,
            minIntervalMs: request.body.quotas?.minIntervalMs,
          });
          const keyRow = await insertApiKey(trx, {
            id: uuidv7(),
            serviceId: id,
            prefix: displayPrefixOf(apiKey),
            hash: hashApiKey(apiKey),
            scopes: [...API_KEY_SCOPES],
          });
          return { service: row, key: keyRow };
        })
        .catch((error: unknown) => {
          if (isUniqueViolation(error)) {
            throw new TickworkError('conflict', `A service named "${request.body.name}" already exists.`, {
              errors: [{ field: 'name', message: 'is already taken' }],
            });
          }
          throw error;
        });
      reply.code(201).header('location', `/v1/admin/services/${service.id}`);
      return {
        id: service.id,
        name: service.name,
        quotas: { maxJobs: service.max_jobs, minIntervalMs: service.min_interval_ms },
        apiKey,
        apiKeyId: key.id,
        signingSecret,
        createdAt: service.created_at.toISOString(),
      };
    },
  );

  app.get(
    '/admin/services',
    {
      schema: {
        tags: ['admin'],
        operationId: 'listServices',
        summary: 'List services, oldest first',
        querystring: Type.Object({ ...PageQuery }, { additionalProperties: false }),
        response: { 200: success(Ref(ServiceListSchema), 'A page of services.') },
      },
    },
    async (request) => {
      const { limit = 20, cursor } = request.query;
      const page = await listServices(app.readDb, { limit, afterId: afterIdOf(cursor) });
      return { items: page.items.map(serviceDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/admin/services/:id',
    {
      schema: {
        tags: ['admin'],
        operationId: 'getService',
        summary: 'A service with its API keys (prefixes only)',
        params: ServiceParams,
        response: { 200: success(Ref(ServiceDetailSchema), 'The service and its keys.') },
      },
    },
    async (request) => {
      const row = await findServiceById(app.readDb, request.params.id);
      if (!row) throw notFound(request.params.id);
      const keys = await listKeysOfService(app.readDb, row.id);
      return { ...serviceDto(row), keys: keys.map(keyDto) };
    },
  );

  app.patch(
    '/admin/services/:id',
    {
      schema: {
        tags: ['admin'],
        operationId: 'updateService',
        summary: "Change a service's quotas and its alert webhook",
        description:
          'Existing jobs are kept; the new quotas apply to the next create or update. `alertWebhookUrl` ' +
          'must be an http or https URL that callbacks could reach (the same destination rules); alerts ' +
          'opened or resolved from then on are sent to it.',
        params: ServiceParams,
        body: Ref(UpdateServiceBody),
        response: { 200: success(Ref(ServiceSchema), 'The service, with its new quotas and webhook.') },
      },
    },
    async (request) => {
      const { quotas, alertWebhookUrl } = request.body;
      // Checked before anything is written: a bad URL changes nothing, not even the quotas.
      if (alertWebhookUrl !== undefined && alertWebhookUrl !== null) checkAlertWebhookUrl(app, alertWebhookUrl);
      const row = await app.db.transaction().execute(async (trx) => {
        const updated = await updateServiceQuotas(trx, request.params.id, quotas ?? {});
        if (!updated || alertWebhookUrl === undefined) return updated;
        return setAlertWebhookUrl(trx, updated.id, alertWebhookUrl);
      });
      if (!row) throw notFound(request.params.id);
      // A principal carries its service's minIntervalMs.
      await app.announceAuthChange();
      return serviceDto(row);
    },
  );

  app.post(
    '/admin/services/:id/keys',
    {
      schema: {
        tags: ['admin'],
        operationId: 'createApiKey',
        summary: 'Issue an API key',
        description: 'The key is shown once, in this response only.',
        params: ServiceParams,
        body: Type.Optional(Ref(CreateKeyBody)),
        response: { 201: success(Ref(CreatedKeySchema), 'The key, shown this once.', 'Location') },
      },
    },
    async (request, reply) => {
      const service = await findServiceById(app.db, request.params.id);
      if (!service) throw notFound(request.params.id);
      const expiresAt = request.body?.expiresAt === undefined ? null : new Date(request.body.expiresAt);
      if (expiresAt !== null && expiresAt.getTime() <= Date.now()) {
        throw new TickworkError('validation_failed', 'expiresAt: must be in the future', {
          errors: [{ field: 'expiresAt', message: 'must be in the future' }],
        });
      }
      const apiKey = generateApiKey();
      const scopes = request.body?.scopes ?? [...API_KEY_SCOPES];
      const row = await insertApiKey(app.db, {
        id: uuidv7(),
        serviceId: service.id,
        prefix: displayPrefixOf(apiKey),
        hash: hashApiKey(apiKey),
        scopes,
        expiresAt,
      });
      reply.code(201).header('location', `/v1/admin/services/${service.id}/keys/${row.id}`);
      return {
        apiKeyId: row.id,
        id: row.id,
        apiKey,
        prefix: row.prefix,
        scopes,
        expiresAt: row.expires_at?.toISOString() ?? null,
        createdAt: row.created_at.toISOString(),
      };
    },
  );

  app.delete(
    '/admin/services/:id/keys/:keyId',
    {
      schema: {
        tags: ['admin'],
        operationId: 'revokeApiKey',
        summary: 'Revoke an API key: it fails with 401 from the next request, on every api instance',
        params: KeyParams,
        response: { 204: Type.Null({ description: 'Revoked.' }) },
      },
    },
    async (request, reply) => {
      const row = await revokeApiKey(app.db, request.params.id, request.params.keyId);
      if (!row)
        throw new TickworkError('not_found', `Service ${request.params.id} has no key ${request.params.keyId}.`);
      await app.announceAuthChange();
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/admin/services/:id/disable',
    {
      schema: {
        tags: ['admin'],
        operationId: 'disableService',
        summary: 'Disable a service: its keys stop working and its jobs stop firing',
        description: 'Idempotent. Jobs and runs are kept; enable brings the schedules back.',
        params: ServiceParams,
        response: { 200: success(Ref(ServiceSchema), 'The service, disabled.') },
      },
    },
    async (request) => serviceDto(await app.jobs.withLog(request.log).disableService(request.params.id)),
  );

  app.post(
    '/admin/services/:id/enable',
    {
      schema: {
        tags: ['admin'],
        operationId: 'enableService',
        summary: 'Enable a disabled service: its keys work again and its active jobs are scheduled again',
        description: 'Idempotent. Occurrences that fell due while disabled are not delivered.',
        params: ServiceParams,
        response: { 200: success(Ref(ServiceSchema), 'The service, enabled.') },
      },
    },
    async (request) => serviceDto(await app.jobs.withLog(request.log).enableService(request.params.id)),
  );

  app.post(
    '/admin/services/:id/signing-secret/rotate',
    {
      schema: {
        tags: ['admin'],
        operationId: 'rotateSigningSecret',
        summary: 'Rotate the signing secret',
        description:
          'The new secret is shown once. For 24 h callbacks carry two signatures, the new and the previous, so ' +
          'receivers can switch without losing a callback.',
        params: ServiceParams,
        response: { 200: success(Ref(RotatedSecretSchema), 'The new secret, shown this once.') },
      },
    },
    async (request) => {
      const signingSecret = generateSigningSecret();
      const previousSecretExpiresAt = new Date(Date.now() + PREVIOUS_SECRET_GRACE_MS);
      const row = await rotateSigningSecret(
        app.db,
        request.params.id,
        encryptSecret(signingSecret, options.secretKey),
        previousSecretExpiresAt,
      );
      if (!row) throw notFound(request.params.id);
      return { signingSecret, previousSecretExpiresAt: previousSecretExpiresAt.toISOString() };
    },
  );
};

export default admin;
