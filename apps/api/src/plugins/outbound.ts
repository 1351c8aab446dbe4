/**
 * Refuses at the door a callback URL that could never be delivered safely: another scheme,
 * credentials, a literal non-public address in any spelling, `localhost`. The worker checks the
 * resolved address again at connect time; this only spares the client a job that would fail.
 *
 * Every /v1 route whose body carries `target.url` gets the check, added as a route-level
 * preHandler by `onRoute` (so it runs after authentication, and a route added later — PATCH,
 * a bulk create — is covered without code of its own).
 */
import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { destinationRefusal, validationError, type OutboundPolicy } from '@tickwork/core';

declare module 'fastify' {
  interface FastifyInstance {
    outboundPolicy: OutboundPolicy;
  }
}

function targetUrlOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const target = (body as { target?: unknown }).target;
  if (typeof target !== 'object' || target === null) return undefined;
  const url = (target as { url?: unknown }).url;
  return typeof url === 'string' ? url : undefined;
}

export default fp<OutboundPolicy>(
  async (app, policy) => {
    app.decorate('outboundPolicy', { allowPrivate: policy.allowPrivate, allowedHosts: [...policy.allowedHosts] });
    const check = async (request: FastifyRequest) => {
      const raw = targetUrlOf(request.body);
      if (raw === undefined) return;
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        return; // the route's own validation names a URL that does not parse
      }
      const refusal = destinationRefusal(app.outboundPolicy, url);
      if (refusal !== undefined) {
        throw validationError([{ field: 'target.url', message: `is not an allowed destination: ${refusal}` }]);
      }
    };
    app.addHook('onRoute', (route) => {
      if (!route.url.startsWith('/v1/') || route.url.startsWith('/v1/admin')) return;
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      if (!methods.some((m) => m === 'POST' || m === 'PUT' || m === 'PATCH')) return;
      const existing = route.preHandler;
      route.preHandler =
        existing === undefined ? [check] : [...(Array.isArray(existing) ? existing : [existing]), check];
    });
  },
  { name: 'outbound' },
);
