/** The api process: configuration, logger, listen, graceful close on SIGTERM/SIGINT. */
import closeWithGrace from 'close-with-grace';
import { ConfigError, REDACTED, loadConfig, type Config } from '@tickwork/core';
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
    redact: { paths: API_LOG_REDACT_PATHS, censor: REDACTED },
  },
});

// SIGTERM/SIGINT (and an uncaught error) close Fastify: in-flight requests finish, the pools close.
// A second signal, or a close past the grace period, exits at once with 1.
closeWithGrace(
  {
    delay: config.shutdownGraceMs + 5_000,
    logger: { error: (error: unknown) => server.log.error({ err: error }, 'error while closing') },
    onTimeout: () => server.log.error('shutdown took too long; exiting'),
    onSecondSignal: (signal) => server.log.error({ signal }, 'second signal while closing; exiting'),
    onSecondError: (error) => server.log.error({ err: error }, 'second error while closing; exiting'),
  },
  async ({ signal, err }) => {
    if (err) server.log.error({ err }, 'uncaught error: closing');
    server.log.info({ signal }, 'shutting down: finishing in-flight requests');
    await server.close();
  },
);

await server.listen({ host: config.host, port: config.port });
