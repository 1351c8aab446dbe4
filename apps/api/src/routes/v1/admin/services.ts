import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CreateServiceBody, CreatedServiceSchema, ProblemSchema, TickworkError, displayPrefixOf, encryptSecret, generateApiKey, generateSigningSecret, hashApiKey, uuidv7 } from '@tickwork/core';
import { insertApiKey, insertService } from '@tickwork/db';

export interface AdminRoutesOptions {
  secretKey: string;
}

const admin: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, options) => {
  app.addHook('preHandler', app.authenticateAdmin);

  app.post(
    '/admin/services',
    {
      schema: {
        tags: ['admin'],
        summary: 'Create a service (a tenant) and its first API key',
        description: 'The API key and signing secret are shown once, in this response only.',
        security: [{ adminToken: [] }],
        body: CreateServiceBody,
        response: { 201: CreatedServiceSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 409: ProblemSchema },
      },
    },
    async (request, reply) => {
      const apiKey = generateApiKey();
      const signingSecret = generateSigningSecret();
      const id = uuidv7();
      const service = await app.db
        .transaction()
        .execute(async (trx) => {
          const row = await insertService(trx, {
            id,
            name: request.body.name,
            signingSecret: encryptSecret(signingSecret, options.secretKey),
          });
          await insertApiKey(trx, {
            id: uuidv7(),
            serviceId: id,
            prefix: displayPrefixOf(apiKey),
            hash: hashApiKey(apiKey),
            scopes: ['jobs:read', 'jobs:write'],
          });
          return row;
        })
        .catch((error: unknown) => {
          if ((error as { code?: string }).code === '23505') {
            throw new TickworkError('conflict', `A service named "${request.body.name}" already exists.`, {
              errors: [{ field: 'name', message: 'is already taken' }],
            });
          }
          throw error;
        });
      reply.code(201).header('location', `/v1/admin/services/${service.id}`);
      return { id: service.id, name: service.name, apiKey, signingSecret, createdAt: service.created_at.toISOString() };
    },
  );
};

export default admin;
