import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { checkReadiness } from '../readiness.ts';

const Check = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('down')]),
  error: Type.Optional(Type.String()),
});
const Ready = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Object({ postgres: Check, redis: Check }),
});

const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/health/live',
    {
      schema: {
        tags: ['health'],
        summary: 'The process runs',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
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
        summary: 'Postgres and Redis answer; 503 names the part that does not',
        response: { 200: Ready, 503: Ready },
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
