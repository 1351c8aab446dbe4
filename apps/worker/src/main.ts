/** The worker process: configuration, logger, the BullMQ worker, its health port, graceful close. */
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { ConfigError, REDACTED, loadConfig, sensitiveHeaderLogPaths, type Config } from '@tickwork/core';
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

const options: pino.LoggerOptions = {
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
      ...sensitiveHeaderLogPaths(['req.headers', 'err.headers']),
      'signingSecrets',
      '*.signingSecrets',
    ],
    censor: REDACTED,
  },
};
// Lines go to stdout through an asynchronous destination that writes them 4 KiB at a time, or at
// least once a second: at LOG_LEVEL=info a delivered occurrence logs one line, which was one write
// to stdout each (bench/RESULTS.md, the worker's writes per occurrence). What is still buffered is
// written at exit; TICKWORK_LOG_BUFFER=off writes each line as it is logged.
const logger =
  process.env.TICKWORK_LOG_BUFFER === 'off'
    ? pino(options)
    : pino(options, pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 1_000 }));
const tickwork = await startWorker(config, logger);
const health = await startHealthServer(tickwork, config.workerPort, config.host);
logger.info({ port: config.workerPort }, 'health and metrics port open');

// SIGTERM/SIGINT (and an uncaught error) stop taking occurrences and finish the in-flight ones
// (worker.ts's close). A second signal, or a close past the grace period, exits at once with 1.
closeWithGrace(
  {
    delay: config.shutdownGraceMs + 10_000,
    logger: { error: (error: unknown) => logger.error({ err: error }, 'error while closing') },
    onTimeout: () => logger.error('shutdown took too long; exiting'),
    onSecondSignal: (signal) => logger.error({ signal }, 'second signal while closing; exiting'),
    onSecondError: (error) => logger.error({ err: error }, 'second error while closing; exiting'),
  },
  async ({ signal, err }) => {
    if (err) logger.error({ err }, 'uncaught error: closing');
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down: finishing in-flight occurrences');
    await tickwork.close();
    health.close();
    logger.info('worker stopped');
  },
);
