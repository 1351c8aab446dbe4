/** The worker process: configuration, logger, the BullMQ worker, its health port, graceful close. */
import pino from 'pino';
import { ConfigError, loadConfig, type Config } from '@tickwork/core';
import { startHealthServer } from './health-server.ts';
import { startWorker } from './worker.ts';

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`tickwork worker: ${error.message}`);
    process.exit(1);
  }
  throw error;
}

const logger = pino({
  level: config.logLevel,
  base: { service: 'tickwork-worker', pid: process.pid },
  // Nothing here logs a target or a callback body on purpose; these paths guard against a line
  // that passes one by accident (an error carrying the request, a job row).
  redact: {
    paths: [
      'target.headers',
      'target.body',
      'target.bodyText',
      'target_body',
      '*.target.headers',
      '*.target.body',
      '*.target.bodyText',
      '*.target_body',
      'body',
      'headers',
      'signingSecret',
      'signingSecrets',
      '*.signingSecrets',
    ],
    censor: '[redacted]',
  },
});
const tickwork = await startWorker(config, logger);
const health = await startHealthServer(tickwork, config.workerPort, config.host);
logger.info({ port: config.workerPort }, 'health and metrics port open');

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down: finishing in-flight occurrences');
  const hardStop = setTimeout(() => {
    logger.error('shutdown took too long; exiting');
    process.exit(1);
  }, config.shutdownGraceMs + 10_000);
  hardStop.unref();
  try {
    await tickwork.close();
    health.close();
    logger.info('worker stopped');
    process.exit(0);
  } catch (error) {
    logger.error({ err: error }, 'error while closing');
    process.exit(1);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
