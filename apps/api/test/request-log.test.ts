/**
 * The request's logger made on its first enabled line (`lazyChildLogger`): every line a request
 * logs carries its request id and the parent's bindings and redaction, as a pino child's would;
 * a line below the level writes nothing; a route's own log level still applies.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import pino from 'pino';
import { lazyChildLogger } from '../src/plugins/request-log.ts';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const logger = pino({ level, base: { service: 'test' }, redact: { paths: ['secret'], censor: '***' } }, stream);
  return { lines, logger };
}

async function appWith(level: string) {
  const { lines, logger } = capture(level);
  const app = Fastify({ loggerInstance: logger, childLoggerFactory: lazyChildLogger });
  app.get('/warn', async (request) => {
    request.log.warn({ secret: 'hunter2', n: 1 }, 'careful');
    request.log.child({ part: 'inner' }).error('inner line');
    return { ok: true };
  });
  app.get('/debug', async (request) => {
    request.log.debug('not at this level');
    return { ok: true };
  });
  app.get('/quiet', { logLevel: 'error' }, async (request) => {
    request.log.warn('below the route level');
    return { ok: true };
  });
  await app.ready();
  return { app, lines };
}

describe('lazyChildLogger', () => {
  it('logs with the request id, the bindings and the redaction of a real child', async () => {
    const { app, lines } = await appWith('info');
    const response = await app.inject({ method: 'GET', url: '/warn' });
    expect(response.statusCode).toBe(200);
    const warn = lines.find((l) => l.msg === 'careful');
    expect(warn).toMatchObject({ level: 40, service: 'test', secret: '***', n: 1 });
    expect(typeof warn?.reqId).toBe('string');
    const inner = lines.find((l) => l.msg === 'inner line');
    expect(inner).toMatchObject({ reqId: warn?.reqId, part: 'inner', service: 'test' });
    await app.close();
  });

  it('writes nothing for a line below the level, and keeps a route level', async () => {
    const { app, lines } = await appWith('warn');
    await app.inject({ method: 'GET', url: '/debug' });
    await app.inject({ method: 'GET', url: '/quiet' });
    expect(lines.map((l) => l.msg)).toEqual([]);
    await app.close();
  });

  it('logs the request lines Fastify writes at info, each with its request id', async () => {
    const { lines, logger } = capture('info');
    const app = Fastify({ loggerInstance: logger, childLoggerFactory: lazyChildLogger });
    app.get('/', async () => ({ ok: true }));
    await app.inject({ method: 'GET', url: '/' });
    const incoming = lines.find((l) => l.msg === 'incoming request');
    const completed = lines.find((l) => l.msg === 'request completed');
    expect(incoming?.reqId).toBeDefined();
    expect(completed?.reqId).toBe(incoming?.reqId);
    await app.close();
  });
});
