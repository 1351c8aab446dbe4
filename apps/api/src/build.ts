/** A Fastify instance with Tickwork's server options and the app registered: used by server.ts and tests. */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { type FastifyServerOptions } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { TickworkError, sensitiveHeaderLogPaths, toProblem, uuidv7 } from '@tickwork/core';
import app, { type AppConfig } from './app.ts';
import { SHARED_SCHEMAS, installJsonParser, validatorCompiler } from './plugins/validation.ts';

/** The largest body the api reads (413 beyond); tests send one byte more. */
export const BODY_LIMIT = 64 * 1024;

/** Never in a log line: credentials in headers, and request bodies (targets carry secrets). Shown as `***`. */
export const API_LOG_REDACT_PATHS = [
  ...sensitiveHeaderLogPaths(['req.headers', 'headers']),
  'req.body',
  'body',
  'target.headers',
  '*.target.headers',
];

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (malformed, headers over 16 KiB,
 * too slow) still get problem+json, written straight to the socket, and a request id like every
 * other answer (a new one: the request's own headers were not read).
 */
function clientErrorHandler(error: Error & { code?: string }, socket: Socket) {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const problem =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? toProblem(new TickworkError('headers_too_large', 'The request headers are larger than 16 KiB.'))
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? toProblem(new TickworkError('request_timeout', 'The request took too long to arrive.'))
        : toProblem(new TickworkError('validation_failed', 'The request is not valid HTTP.'));
  const body = JSON.stringify(problem);
  socket.end(
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\nconnection: close\r\ncontent-type: application/problem+json\r\n` +
      `x-request-id: ${uuidv7()}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export async function buildServer(
  config: AppConfig,
  options: Pick<FastifyServerOptions, 'logger' | 'loggerInstance'> = {},
) {
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
    clientErrorHandler,
    routerOptions: { ignoreTrailingSlash: true },
  }).withTypeProvider<TypeBoxTypeProvider>();
  // Once each, for the `Ref`s of route schemas (and as the OpenAPI document's components).
  for (const schema of SHARED_SCHEMAS) server.addSchema(schema);
  server.setValidatorCompiler(validatorCompiler);
  // JSON only: a text/plain body would otherwise reach validation as a string (400) instead of 415.
  server.removeContentTypeParser('text/plain');
  installJsonParser(server);
  // A keep-alive connection that goes idle after close() began would hold the process open
  // until its timeout: a response sent while closing asks the client to hang up instead.
  let closing = false;
  server.addHook('preClose', async () => {
    closing = true;
  });
  server.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  await server.register(app, config);
  return server;
}
