/** The api process: configuration, logger, listen, graceful close on SIGTERM/SIGINT. */
import { ConfigError, loadConfig, type Config } from '@tickwork/core';
import { API_LOG_REDACT_PATHS, buildServer } from './build.ts';

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`tickwork api: ${error.message}`);
    process.exit(1);
  }
  throw error;
}

const server = await buildServer(config, {
  logger: {
    level: config.logLevel,
    base: { service: 'tickwork-api', pid: process.pid },
    // Fastify's serializers log neither headers nor bodies; these paths guard a line that
    // logs a request or an error object by hand.
    redact: { paths: API_LOG_REDACT_PATHS, censor: '[redacted]' },
  },
});

let closing = false;
async function shutdown(signal: string) {
  if (closing) return;
  closing = true;
  server.log.info({ signal }, 'shutting down: finishing in-flight requests');
  const timer = setTimeout(() => {
    server.log.error('shutdown took too long; exiting');
    process.exit(1);
  }, config.shutdownGraceMs + 5_000);
  timer.unref();
  try {
    await server.close();
    process.exit(0);
  } catch (error) {
    server.log.error({ err: error }, 'error while closing');
    process.exit(1);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

await server.listen({ host: config.host, port: config.port });
