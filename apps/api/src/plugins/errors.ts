/**
 * One error handler: every error leaves as RFC 9457 problem+json. Coded TickworkErrors keep
 * their status and detail; validation errors name their fields; anything unexpected is a 500
 * whose detail says nothing of the internals (the log has them, under the request id). An
 * unknown path is a 404; a known path with another method is a 405 with `Allow` (Fastify alone
 * would say 404), found from the route table this plugin collects as routes are added.
 */
import fp from 'fastify-plugin';
import type { FastifyContextConfig, FastifyError, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import { TickworkError, toProblem, type ErrorCode } from '@tickwork/core';
import { isConnectionError } from '@tickwork/db';
import { schemaErrorToProblem } from './validation.ts';

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'validation_failed',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  409: 'conflict',
  412: 'precondition_failed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'unprocessable',
  429: 'rate_limited',
  431: 'headers_too_large',
  503: 'unavailable',
};

export function toTickworkError(error: unknown): TickworkError {
  if (error instanceof TickworkError) return error;
  const fastifyError = error as FastifyError & { validation?: unknown; validationContext?: string };
  if (Array.isArray(fastifyError.validation)) {
    return schemaErrorToProblem(fastifyError.validation, fastifyError.validationContext ?? 'body');
  }
  if (isConnectionError(error)) {
    return new TickworkError('unavailable', 'The database is not answering; nothing was changed.', { cause: error });
  }
  const status = fastifyError.statusCode;
  if (status && status >= 400 && status < 500) {
    const code = BY_STATUS[status] ?? 'validation_failed';
    const detail =
      fastifyError.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? 'Send a JSON body with content-type: application/json.'
        : fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? 'The request body is larger than the 64 KiB limit.'
          : fastifyError.code?.startsWith('FST_ERR_CTP')
            ? 'The request body is not valid JSON.'
            : fastifyError.message;
    const mapped = new TickworkError(code, detail, { cause: error });
    Object.defineProperty(mapped, 'status', { value: status });
    return mapped;
  }
  return new TickworkError('internal', 'Something went wrong on our side. The request id identifies it in our logs.', {
    cause: error,
  });
}

/** A route's path as a pattern: `:param` matches one segment, `*` the rest. */
export function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) =>
      segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('/');
  return new RegExp(`^${source}/?$`);
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route as registered (method, path pattern, schema, config): the 405 logic and route-wide tests read it. */
    routeTable: ReadonlyArray<RouteEntry>;
  }
}

/** One route of the route table. */
export interface RouteEntry {
  method: string;
  url: string;
  schema: FastifySchema | undefined;
  config: FastifyContextConfig | undefined;
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, error: TickworkError) {
  const problem = toProblem(error, request.url.split('?')[0]);
  return reply.code(error.status).type('application/problem+json').send(problem);
}

export default fp(
  async (app) => {
    app.setErrorHandler((error, request, reply) => {
      const mapped = toTickworkError(error);
      if (mapped.status >= 500) request.log.error({ err: error }, 'request failed');
      else request.log.info({ code: mapped.code, status: mapped.status }, mapped.message);
      // RFC 9110: a 401 says how to authenticate.
      if (mapped.status === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Bearer');
      if (mapped.code === 'rate_limited' || mapped.code === 'unavailable') {
        if (!reply.hasHeader('retry-after')) reply.header('retry-after', mapped.code === 'unavailable' ? '1' : '60');
      }
      return sendProblem(request, reply, mapped);
    });
    const routes: Array<{ pattern: RegExp; methods: string[] }> = [];
    const table: RouteEntry[] = [];
    app.decorate('routeTable', table);
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      routes.push({ pattern: patternOf(route.url), methods });
      for (const method of methods) table.push({ method, url: route.url, schema: route.schema, config: route.config });
    });
    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?')[0]!;
      const allowed = new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods));
      if (allowed.size > 0) {
        reply.header('allow', [...allowed].sort().join(', '));
        return sendProblem(
          request,
          reply,
          new TickworkError(
            'method_not_allowed',
            `${path} does not take ${request.method}; it takes ${[...allowed].sort().join(', ')}.`,
          ),
        );
      }
      return sendProblem(request, reply, new TickworkError('not_found', `No route ${request.method} ${path}.`));
    });
  },
  { name: 'errors' },
);
