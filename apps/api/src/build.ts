/** A Fastify instance with Tickwork's server options and the app registered: used by server.ts and tests. */
import Fastify, { type FastifyServerOptions } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { uuidv7 } from '@tickwork/core';
import app, { type AppConfig } from './app.ts';
import { validatorCompiler } from './plugins/validation.ts';

export const BODY_LIMIT = 64 * 1024;

/** Never in a log line: credentials in headers, and request bodies (targets carry secrets). */
export const API_LOG_REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.body',
  'headers.authorization',
  'body',
];

export async function buildServer(config: AppConfig, options: Pick<FastifyServerOptions, 'logger' | 'loggerInstance'> = {}) {
  const server = Fastify({
    ...options,
    bodyLimit: BODY_LIMIT,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : uuidv7();
    },
    requestIdHeader: false,
    requestTimeout: 30_000,
    connectionTimeout: 30_000,
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: true },
  }).withTypeProvider<TypeBoxTypeProvider>();
  server.setValidatorCompiler(validatorCompiler);
  // A keep-alive connection that goes idle after close() began would hold the process open
  // until its timeout: a response sent while closing asks the client to hang up instead.
  let closing = false;
  server.addHook('preClose', async () => {
    closing = true;
  });
  server.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (closing) reply.header('connection', 'close');
  });
  await server.register(app, config);
  return server;
}
