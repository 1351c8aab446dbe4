/**
 * Requests per API key per minute, counted in Redis so the limit holds across every api
 * instance, without a Redis round trip per request: an instance *leases* a share of the key's
 * allowance (`leaseOf`: 1% of the limit, at least 1) from the key's window counter in one Lua
 * call, and spends it locally. Leases never add up past the limit, so N instances together
 * never admit more than it; what they leased and did not spend by the window's end is lost, at
 * most N leases, so a key is refused from at least `limit · (1 − N/100)` requests on
 * (within 10% up to ten instances). A limit under 100 leases one request at a time: exact.
 *
 * The count runs right after authentication, before the body is read (a route-level onRequest
 * hook added after the auth plugin's), keyed by the key's id: one service's burst never spends
 * another's allowance, and requests without a key (health, docs, admin) are not counted. The
 * window is fixed: it starts with the key's first lease and lasts a minute, on every instance
 * (they read its end from Redis). Over the limit: 429 problem+json with `Retry-After` and the
 * draft-standard `RateLimit-*` headers. The counter has its own Redis connection, failing fast:
 * when Redis is away and the instance holds no lease, requests pass uncounted and without
 * made-up headers rather than fail (the job routes answer 503 on their own, as they need Redis).
 */
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
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

const WINDOW_MS = 60_000;

/** Takes `lease` from the window's counter, starting the window when there is none: [count after, ms left]. */
const LEASE_SCRIPT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {n, ttl}`;

/** The share of a key's allowance one instance takes at a time. */
export const leaseOf = (limit: number) => Math.max(1, Math.floor(limit / 100));

interface KeyState {
  /** Requests this instance may still admit in the current window. */
  tokens: number;
  /** The window's counter in Redis after this instance's last lease. */
  counted: number;
  /** When the current window ends (ms since the epoch). */
  endsAt: number;
  /** A lease in flight, shared by the requests that wait for it. */
  leasing: Promise<boolean> | undefined;
}

type Lease = (redisKey: string, amount: number, windowMs: number) => Promise<[number, number]>;

export default fp<RateLimitPluginOptions>(
  async (app, options) => {
    const redis = openRedis(options.redis, 'producer', 'tickwork-api:rate-limit', { lazyConnect: false });
    redis.defineCommand('tickworkLease', { numberOfKeys: 1, lua: LEASE_SCRIPT });
    app.addHook('onClose', async () => {
      redis.disconnect();
    });
    const limit = options.perMinute;
    const lease = leaseOf(limit);
    const states = new Map<string, KeyState>();
    // defineCommand adds the method at run time (EVALSHA, loading the script when Redis lacks it).
    const take = (redis as unknown as { tickworkLease: Lease }).tickworkLease.bind(redis);

    const prune = (now: number) => {
      if (states.size < 10_000) return;
      for (const [key, state] of states) if (state.endsAt <= now && !state.leasing) states.delete(key);
    };

    /** Leases more of the key's allowance; false when Redis could not be asked. */
    const refill = (keyId: string, state: KeyState): Promise<boolean> => {
      state.leasing ??= take(`${options.prefix}:ratelimit:${keyId}`, lease, WINDOW_MS)
        .then(([count, ttl]) => {
          const now = Date.now();
          if (state.endsAt <= now) state.tokens = 0;
          // What of this lease is still within the limit (the counter may have passed it).
          state.tokens += Math.max(0, Math.min(lease, limit - (count - lease)));
          state.counted = count;
          state.endsAt = now + ttl;
          return true;
        })
        .catch(() => false)
        .finally(() => {
          state.leasing = undefined;
        });
      return state.leasing;
    };

    const setHeaders = (reply: FastifyReply, state: KeyState, now: number) => {
      const remaining = Math.max(0, Math.min(limit, limit - state.counted + state.tokens));
      reply.header('ratelimit-limit', limit);
      reply.header('ratelimit-remaining', remaining);
      reply.header('ratelimit-reset', Math.max(1, Math.ceil((state.endsAt - now) / 1000)));
    };

    /** Waits for leases until the key has a token (or is known refused, or Redis is away). */
    const countAfterLease = async (keyId: string, state: KeyState, reply: FastifyReply) => {
      let now = Date.now();
      // Spent in this window (or a window that has ended): lease again, unless known refused.
      while (state.tokens <= 0 || state.endsAt <= now) {
        if (state.endsAt > now && state.counted >= limit) {
          const seconds = Math.max(1, Math.ceil((state.endsAt - now) / 1000));
          setHeaders(reply, { ...state, tokens: 0, counted: limit }, now);
          reply.header('retry-after', seconds);
          throw new TickworkError(
            'rate_limited',
            `This API key may make ${limit} requests a minute; try again in ${seconds} s.`,
          );
        }
        // Redis away: uncounted, and no headers that would say otherwise.
        if (!(await refill(keyId, state))) return;
        now = Date.now();
      }
      state.tokens--;
      setHeaders(reply, state, now);
    };

    /** The onRequest hook: a token this instance holds is spent in the same turn, no promise. */
    const count = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void => {
      const keyId = request.principal?.keyId;
      if (keyId === undefined) {
        done();
        return;
      }
      const now = Date.now();
      let state = states.get(keyId);
      if (!state) {
        prune(now);
        state = { tokens: 0, counted: 0, endsAt: 0, leasing: undefined };
        states.set(keyId, state);
      }
      if (state.tokens > 0 && state.endsAt > now) {
        state.tokens--;
        setHeaders(reply, state, now);
        done();
        return;
      }
      countAfterLease(keyId, state, reply).then(() => done(), done);
    };

    app.addHook('onRoute', (route) => {
      if (!route.url.startsWith('/v1/') || route.url.startsWith('/v1/admin/')) return;
      const existing = route.onRequest;
      // After the auth plugin's check (its onRoute hook ran first): the principal is known.
      route.onRequest =
        existing === undefined ? [count] : [...(Array.isArray(existing) ? existing : [existing]), count];
    });
  },
  { name: 'rate-limit', dependencies: ['auth'] },
);
