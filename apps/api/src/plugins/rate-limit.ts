/**
 * Requests per API key per minute, counted in Redis so the limit holds across every api
 * instance. The count runs right after authentication, before the body is read (a route-level
 * onRequest hook, added after the auth plugin's), keyed by the key's id: one service's burst
 * never spends another's allowance, and requests without a key (health, docs, admin) are not
 * counted. Over the limit: 429 problem+json with `Retry-After` and the
 * draft-standard `RateLimit-*` headers. The counter has its own Redis connection, failing fast:
 * when Redis is away requests pass uncounted rather than fail (the job routes answer 503 on
 * their own, as they need Redis anyway).
 */
import fp from 'fastify-plugin';
import rateLimit from '@fastify/rate-limit';
import { TickworkError } from '@tickwork/core';
import { openRedis, type RedisTarget } from '@tickwork/queue';

export interface RateLimitPluginOptions {
  /** REDIS_URL or the Cluster (`redisTargetOf`). */
  redis: RedisTarget;
  /** Keys live under `<prefix>:ratelimit:` beside the queue's, so one prefix holds a deployment's keys. */
  prefix: string;
  /** @defaultValue 1200 */
  perMinute: number;
}

export default fp<RateLimitPluginOptions>(
  async (app, options) => {
    const redis = openRedis(options.redis, 'producer', 'tickwork-api:rate-limit', { lazyConnect: false });
    app.addHook('onClose', async () => {
      redis.disconnect();
    });
    // When the count could not be made (Redis away: skipOnError), the plugin still reports a
    // full allowance. A counted request always leaves at most `max - 1`, so a full allowance
    // means "not counted": say nothing rather than something untrue. (Reading `redis.status`
    // instead races with reconnection.)
    app.addHook('onSend', async (_request, reply) => {
      if (String(reply.getHeader('ratelimit-remaining')) === String(options.perMinute)) {
        for (const name of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset']) reply.removeHeader(name);
      }
    });
    await app.register(rateLimit, {
      global: true,
      hook: 'onRequest',
      max: options.perMinute,
      timeWindow: 60_000,
      redis,
      nameSpace: `${options.prefix}:ratelimit:`,
      skipOnError: true,
      enableDraftSpec: true,
      keyGenerator: (request) => request.principal?.keyId ?? 'anonymous',
      allowList: (request) => request.principal === null,
      errorResponseBuilder: (_request, context) =>
        new TickworkError(
          'rate_limited',
          `This API key may make ${context.max} requests a minute; try again in ${Math.max(1, Math.ceil(context.ttl / 1000))} s.`,
        ),
    });
  },
  { name: 'rate-limit', dependencies: ['auth'] },
);
