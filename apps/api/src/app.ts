/**
 * The Tickwork api as a Fastify plugin: shared dependencies, routes, error handling. The
 * process concerns (logger, listen, signals) live in server.ts; tests register this on a bare
 * Fastify instance and call it with inject().
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { secretKeysOf, type Config, type SecretKeys } from '@tickwork/core';
import { redisTargetOf } from '@tickwork/queue';
import authPlugin from './plugins/auth.ts';
import bullBoardPlugin from './plugins/bull-board.ts';
import cachePlugin from './plugins/cache.ts';
import dbPlugin from './plugins/db.ts';
import errorsPlugin from './plugins/errors.ts';
import metricsPlugin from './plugins/metrics.ts';
import outboundPlugin from './plugins/outbound.ts';
import queuePlugin from './plugins/queue.ts';
import rateLimitPlugin from './plugins/rate-limit.ts';
import swaggerPlugin from './plugins/swagger.ts';
import alertWatchPlugin from './plugins/alert-watch.ts';
import adminRoutes from './routes/v1/admin/services.ts';
import calendarRoutes from './routes/v1/calendars/index.ts';
import alertRoutes from './routes/v1/alerts/index.ts';
import healthRoutes from './routes/health.ts';
import jobRoutes from './routes/v1/jobs/index.ts';
import runRoutes from './routes/v1/runs/index.ts';
import scheduleRoutes from './routes/v1/schedules/index.ts';
import { CalendarsService } from './services/calendars.ts';
import { JobsService } from './services/jobs.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The jobs service tier: every route that reads or changes jobs and runs goes through it. */
    jobs: JobsService;
    /** The calendars service tier: exclusion calendars, and the ones a job or a preview lists. */
    calendars: CalendarsService;
    /** SECRET_KEY (and SECRET_KEY_PREVIOUS while a rotation is under way): open and seal stored secrets. */
    secretKeys: SecretKeys;
  }
}

export type AppConfig = Pick<
  Config,
  | 'databaseUrl'
  | 'databaseReadUrl'
  | 'databasePoolMax'
  | 'redisUrl'
  | 'bullmqPrefix'
  | 'adminToken'
  | 'secretKey'
  | 'secretKeyPrevious'
> &
  /** Optional so a caller that predates them gets the safe defaults: no private callbacks, 1200/min. */
  Partial<
    Pick<
      Config,
      | 'callbackAllowPrivate'
      | 'callbackAllowedHosts'
      | 'rateLimitPerMinute'
      | 'redisClusterNodes'
      | 'fireQueueShards'
      | 'alertWatchIntervalMs'
      | 'databaseReadMaxLagMs'
    >
  >;

export default fp<AppConfig>(
  async (app: FastifyInstance, config) => {
    await app.register(errorsPlugin);
    // Every Redis use of the api (queues, key cache epoch, rate limit, read marks) on the one
    // Redis, or the Cluster.
    const redis = redisTargetOf(config);
    await app.register(dbPlugin, {
      url: config.databaseUrl,
      readUrl: config.databaseReadUrl,
      poolMax: config.databasePoolMax,
      redis,
      prefix: config.bullmqPrefix,
      ...(config.databaseReadMaxLagMs === undefined ? {} : { readMaxLagMs: config.databaseReadMaxLagMs }),
    });
    await app.register(queuePlugin, { redis, prefix: config.bullmqPrefix, shards: config.fireQueueShards ?? 1 });
    // Before any plugin that adds a route, so the OpenAPI document sees every route.
    await app.register(swaggerPlugin);
    await app.register(metricsPlugin);
    await app.register(cachePlugin, { url: config.databaseUrl });
    await app.register(authPlugin, { adminToken: config.adminToken });
    await app.register(rateLimitPlugin, {
      redis,
      prefix: config.bullmqPrefix,
      perMinute: config.rateLimitPerMinute ?? 1200,
    });
    app.decorate('calendars', new CalendarsService({ db: app.db, readDb: app.readDb, jobCache: app.caches.jobs }));
    const secretKeys = secretKeysOf(config);
    app.decorate('secretKeys', secretKeys);
    app.decorate(
      'jobs',
      new JobsService({
        secretKeys,
        db: app.db,
        readDb: app.readDb,
        jobCache: app.caches.jobs,
        fireQueue: app.fireQueue,
        log: app.log,
        announceAuthChange: () => app.announceAuthChange(),
        announceJobChange: app.announceJobChange,
        calendars: app.calendars,
      }),
    );
    await app.register(outboundPlugin, {
      allowPrivate: config.callbackAllowPrivate ?? false,
      allowedHosts: config.callbackAllowedHosts ?? [],
    });
    await app.register(alertWatchPlugin, {
      secretKeys,
      policy: app.outboundPolicy,
      intervalMs: config.alertWatchIntervalMs ?? 10_000,
    });
    await app.register(bullBoardPlugin, { adminToken: config.adminToken });
    await app.register(healthRoutes);
    await app.register(
      async (v1) => {
        await v1.register(jobRoutes);
        await v1.register(runRoutes);
        await v1.register(scheduleRoutes);
        await v1.register(calendarRoutes);
        await v1.register(alertRoutes);
        await v1.register(adminRoutes, { secretKeys });
      },
      { prefix: '/v1' },
    );
  },
  { name: 'tickwork-api' },
);
