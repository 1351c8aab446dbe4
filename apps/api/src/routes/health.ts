import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { LivenessSchema, ReadinessSchema, Ref } from '@tickwork/core';
import { checkReadiness } from '../readiness.ts';

const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/health/live',
    {
      schema: {
        tags: ['health'],
        operationId: 'getLiveness',
        summary: 'The process runs',
        response: { 200: Ref(LivenessSchema) },
      },
      logLevel: 'warn',
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/health/ready',
    {
      schema: {
        tags: ['health'],
        operationId: 'getReadiness',
        summary: 'Postgres and Redis answer; 503 names the part that does not; a read replica shows as degraded',
        response: { 200: Ref(ReadinessSchema), 503: Ref(ReadinessSchema) },
      },
      logLevel: 'warn',
    },
    async (_request, reply) => {
      const { ok, checks } = await checkReadiness(app);
      reply.code(ok ? 200 : 503);
      return { status: ok ? ('ok' as const) : ('unavailable' as const), checks };
    },
  );
};

export default health;
