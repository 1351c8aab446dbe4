/**
 * Prometheus metrics of the api at /metrics (unauthenticated, like the probes): request
 * durations by route pattern — never the raw URL, whose ids would make a series per job — plus
 * the pool, readiness and queue gauges both processes share, and Node's process metrics.
 */
import fp from 'fastify-plugin';
import { Histogram, type Registry } from 'prom-client';
import {
  DURATION_BUCKETS,
  createRegistry,
  registerAlertGauge,
  registerPoolGauges,
  registerQueueGauges,
  registerReadyGauge,
  registerReplicaMetrics,
} from '@tickwork/metrics';
import { countOpenAlerts } from '@tickwork/db';
import { fireQueueStatsOf } from '@tickwork/queue';
import { checkReadiness } from '../readiness.ts';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
  }
}

/** The route label of a request that matched no route: one series for every 404, whatever the URL. */
const UNMATCHED_ROUTE = 'unmatched';

export default fp(
  async (app) => {
    const registry = createRegistry();
    const requestDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'API request duration by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    registerPoolGauges(registry, app.dbPool);
    registerReadyGauge(registry, async () => (await checkReadiness(app)).ok);
    registerQueueGauges(registry, fireQueueStatsOf(app.fireQueue));
    registerAlertGauge(registry, () => countOpenAlerts(app.db));
    if (app.readRouter) registerReplicaMetrics(registry, app.readRouter);
    app.decorate('metrics', registry);

    // One labels object per series, made once: a request only looks its series up.
    const series = new Map<string, { method: string; route: string; status_code: string }>();
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
      const key = `${request.method} ${reply.statusCode} ${route}`;
      let labels = series.get(key);
      if (labels === undefined) {
        labels = { method: request.method, route, status_code: String(reply.statusCode) };
        series.set(key, labels);
      }
      requestDuration.observe(labels, reply.elapsedTime / 1000);
      done();
    });

    app.get(
      '/metrics',
      {
        schema: {
          tags: ['health'],
          operationId: 'getMetrics',
          summary: 'Prometheus metrics of this api instance',
          response: {
            200: {
              description: 'The Prometheus text exposition format.',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
        logLevel: 'warn',
      },
      async (_request, reply) => {
        reply.type(registry.contentType);
        return registry.metrics();
      },
    );
  },
  { name: 'metrics', dependencies: ['db', 'queue'] },
);
