/**
 * Who is calling, and may they. Service routes take `Authorization: Bearer <api key>`: the key's
 * SHA-256 is looked up (no secret is ever compared in SQL), so a revoked key or disabled service
 * fails at once on every api instance. Principals are kept in process (`auth-cache.ts`): a
 * request with a cached key asks neither Postgres nor Redis, every change of a key or service
 * empties the caches of every instance (a notification from Postgres), and admin changes answer
 * only once every instance has acknowledged it; `TICKWORK_AUTH_CACHE=off` turns the cache off.
 * The scope a request needs follows from its method (reads
 * need `jobs:read`, anything else `jobs:write`) unless the route says otherwise in
 * `config.scope`, so a new route is covered without a line of its own. Admin routes take the
 * ADMIN_TOKEN, compared in constant time.
 *
 * Both checks run as `onRequest` hooks that `onRoute` adds to every `/v1` route (reading the
 * route's declared scope once, there), before the body is read, parsed or validated: a caller
 * without a usable credential learns nothing about what a request would need (401/403, never the
 * field list of a 400), and its body is never parsed. A key this instance holds is checked
 * without a promise, so the request goes on in the same turn of the event loop.
 */
import { timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  API_KEY_PATTERN,
  API_KEY_PREFIX,
  TickworkError,
  apiKeyDigest,
  constantTimeEqual,
  isDigestOf,
  type ApiKeyScope,
} from '@tickwork/core';
import { findUsableKey, touchApiKey, type Principal } from '@tickwork/db';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** The scope a route needs when its method alone would say otherwise (a POST that only reads). */
    scope?: ApiKeyScope;
  }
  interface FastifyInstance {
    /** onRequest hook of every /v1 service route. */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /** onRequest hook of every /v1/admin route. */
    authenticateAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /**
     * Makes every cached principal stale on every api instance. Admin changes that can make a key
     * unusable, or change what its principal carries, call it after their commit and before they answer.
     */
    announceAuthChange: () => Promise<void>;
  }
}

export interface AuthPluginOptions {
  adminToken: string | undefined;
}

function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new TickworkError('unauthorized', 'Authenticate with Authorization: Bearer <api key>.');
  return request.principal;
}

/** The scope a request needs: the route's own, else `jobs:read` for GET/HEAD and `jobs:write` for the rest. */
function scopeOf(method: string, declared: ApiKeyScope | undefined): ApiKeyScope {
  if (declared) return declared;
  return method === 'GET' || method === 'HEAD' ? 'jobs:read' : 'jobs:write';
}

/**
 * The credential a path takes: the admin token under `/v1/admin/`, a service API key elsewhere
 * under `/v1/`, none outside (health, metrics, docs). The OpenAPI document's security follows it.
 */
export function credentialOf(path: string): 'apiKey' | 'adminToken' | undefined {
  if (path.startsWith('/v1/admin/')) return 'adminToken';
  return path.startsWith('/v1/') ? 'apiKey' : undefined;
}

/** `last_used_at` is written at most this often per key, so a busy key costs no write per request. */
const TOUCH_EVERY_MS = 60_000;

export function isAdminToken(token: string | undefined, adminToken: string | undefined): boolean {
  return token !== undefined && adminToken !== undefined && constantTimeEqual(token, adminToken);
}

export default fp<AuthPluginOptions>(
  async (app, options) => {
    app.decorateRequest('principal', null);
    const { bus, principals } = app.caches;
    const adminDigest = options.adminToken === undefined ? undefined : apiKeyDigest(options.adminToken);
    app.decorate('announceAuthChange', async () => {
      if (!bus) return;
      try {
        await bus.barrier();
      } catch (error) {
        throw new TickworkError(
          'unavailable',
          'The change is saved, but could not be announced to every api instance; repeat the request.',
          { cause: error },
        );
      }
    });
    const findKey = (hash: string) => findUsableKey(app.db, hash);
    /** The key's principal from Postgres (through this instance's cache, which fills from it). */
    const principalOfHash = (hash: string) => (principals ? principals.read(hash, () => findKey(hash)) : findKey(hash));

    /** What a request with a key's principal may do: the error to answer, or undefined once admitted. */
    const admit = (
      request: FastifyRequest,
      reply: FastifyReply,
      principal: Principal | undefined,
      digest: Buffer,
      declared: ApiKeyScope | undefined,
    ): TickworkError | undefined => {
      if (!principal || !isDigestOf(principal.hash, digest)) {
        reply.header('www-authenticate', 'Bearer error="invalid_token"');
        return new TickworkError('unauthorized', 'The API key is not valid (unknown, revoked, expired or disabled).');
      }
      const needed = scopeOf(request.method, declared);
      if (!principal.scopes.includes(needed)) {
        return new TickworkError('forbidden', `This API key lacks the scope ${needed}.`);
      }
      request.principal = principal;
      const now = Date.now();
      if (!principal.lastUsedAt || now - principal.lastUsedAt.getTime() > TOUCH_EVERY_MS) {
        // A cached principal is shared by the key's requests: one touch a minute, not one each.
        const at = new Date(now);
        principal.lastUsedAt = at;
        touchApiKey(app.db, principal.keyId, at).catch((error: unknown) => {
          request.log.warn({ err: error }, 'could not record the key as used');
        });
      }
      return undefined;
    };

    /**
     * The onRequest check of a service route whose declared scope is `declared`. A key this
     * instance holds fresh is checked without a promise (`done` in the same turn); any other
     * asks Postgres first. Every outcome is the same either way.
     */
    const authenticateFor =
      (declared: ApiKeyScope | undefined) =>
      (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void => {
        const token = bearerOf(request);
        if (!token) {
          reply.header('www-authenticate', 'Bearer');
          done(new TickworkError('unauthorized', 'Authenticate with Authorization: Bearer <api key>.'));
          return;
        }
        // One SHA-256 per request: the key's hash is both its lookup and what both constant-time
        // checks compare (as `constantTimeEqual` would: hashes of equal length, `timingSafeEqual`).
        const digest = apiKeyDigest(token);
        if (adminDigest !== undefined && timingSafeEqual(digest, adminDigest)) {
          done(new TickworkError('forbidden', 'The admin token is for /v1/admin routes only; use a service API key.'));
          return;
        }
        if (!API_KEY_PATTERN.test(token)) {
          done(admit(request, reply, undefined, digest, declared));
          return;
        }
        // The lookup is by hash, so a timing difference in the index says nothing about any key;
        // the constant-time check after it makes the comparison itself independent of the secret.
        const hash = digest.toString('hex'); // hashApiKey(token)
        const cached = principals?.peek(hash);
        if (cached !== undefined) {
          done(admit(request, reply, cached, digest, declared));
          return;
        }
        principalOfHash(hash).then((principal) => done(admit(request, reply, principal, digest, declared)), done);
      };
    app.decorate(
      'authenticate',
      (request: FastifyRequest, reply: FastifyReply) =>
        new Promise<void>((resolve, reject) => {
          const check = authenticateFor(request.routeOptions.config?.scope);
          check(request, reply, (error) => (error ? reject(error) : resolve()));
        }),
    );
    app.decorate('authenticateAdmin', async (request: FastifyRequest, reply: FastifyReply) => {
      const token = bearerOf(request);
      if (!token) {
        reply.header('www-authenticate', 'Bearer');
        throw new TickworkError('unauthorized', 'Authenticate with Authorization: Bearer <ADMIN_TOKEN>.');
      }
      if (!isAdminToken(token, options.adminToken)) {
        if (token.startsWith(API_KEY_PREFIX))
          throw new TickworkError('forbidden', 'Admin routes need the admin token, not a service key.');
        throw new TickworkError('unauthorized', 'The admin token is not valid.');
      }
    });
    app.addHook('onRoute', (route) => {
      const credential = credentialOf(route.url);
      if (credential === undefined) return;
      const check = credential === 'adminToken' ? app.authenticateAdmin : authenticateFor(route.config?.scope);
      const existing = route.onRequest;
      route.onRequest =
        existing === undefined ? [check] : [check, ...(Array.isArray(existing) ? existing : [existing])];
    });
  },
  { name: 'auth', dependencies: ['db', 'cache'] },
);
