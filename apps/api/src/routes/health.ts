import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { Type } from 'typebox';

const Check = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('down')]),
  error: Type.Optional(Type.String()),
});
const Ready = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Object({ postgres: Check, redis: Check }),
});

async function check(work: () => Promise<unknown>, timeoutMs: number) {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      work(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: 'ok' as const };
  } catch (error) {
    return { status: 'down' as const, error: (error as Error).message.slice(0, 200) };
  } finally {
    clearTimeout(timer);
  }
}

/** What /health/ready and the `tickwork_ready` gauge report: Postgres and Redis, each with a 1 s budget. */
export async function checkReadiness(app: FastifyInstance) {
  const [postgres, redis] = await Promise.all([
    check(() => sql`select 1`.execute(app.db), 1_000),
    check(() => app.fireQueue.ping(), 1_000),
  ]);
  return { ok: postgres.status === 'ok' && redis.status === 'ok', checks: { postgres, redis } };
}

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
