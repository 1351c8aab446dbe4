/**
 * Who is calling. Service routes take `Authorization: Bearer <api key>`: the key's SHA-256 is
 * looked up (no secret is ever compared in SQL), so a revoked key or disabled service fails at
 * once on every api instance. Admin routes take the ADMIN_TOKEN, compared in constant time.
 */
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TickworkError, constantTimeEqual, hashApiKey } from '@tickwork/core';
import { findUsableKey, type Principal } from '@tickwork/db';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** preHandler for /v1 service routes. */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /** preHandler for admin routes. */
    authenticateAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
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

export function isAdminToken(token: string | undefined, adminToken: string | undefined): boolean {
  return token !== undefined && adminToken !== undefined && constantTimeEqual(token, adminToken);
}

export default fp<AuthPluginOptions>(
  async (app, options) => {
    app.decorateRequest('principal', null);
    app.decorate('authenticate', async (request: FastifyRequest, reply: FastifyReply) => {
      const token = bearerOf(request);
      if (!token) {
        reply.header('www-authenticate', 'Bearer');
        throw new TickworkError('unauthorized', 'Authenticate with Authorization: Bearer <api key>.');
      }
      if (isAdminToken(token, options.adminToken)) {
        throw new TickworkError('forbidden', 'The admin token is for /v1/admin routes only; use a service API key.');
      }
      const principal = await findUsableKey(app.db, hashApiKey(token));
      if (!principal) {
        reply.header('www-authenticate', 'Bearer error="invalid_token"');
        throw new TickworkError('unauthorized', 'The API key is not valid (unknown, revoked, expired or disabled).');
      }
      request.principal = principal;
    });
    app.decorate('authenticateAdmin', async (request: FastifyRequest, reply: FastifyReply) => {
      const token = bearerOf(request);
      if (!token) {
        reply.header('www-authenticate', 'Bearer');
        throw new TickworkError('unauthorized', 'Authenticate with Authorization: Bearer <ADMIN_TOKEN>.');
      }
      if (!isAdminToken(token, options.adminToken)) {
        if (token.startsWith('tw_')) throw new TickworkError('forbidden', 'Admin routes need the admin token, not a service key.');
        throw new TickworkError('unauthorized', 'The admin token is not valid.');
      }
    });
  },
  { name: 'auth', dependencies: ['db'] },
);
