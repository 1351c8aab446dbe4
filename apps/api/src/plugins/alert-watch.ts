/**
 * The alert watch in the api process (apps/worker/src/alerts.ts): it reads Postgres only, so it
 * opens `not_fired` alerts while every worker is down or Redis lost the schedulers. Each api and
 * worker process runs it; they share the work through SKIP LOCKED claims. Its webhooks go out
 * through dispatchers of its own, guarded like the workers' callbacks.
 */
import fp from 'fastify-plugin';
import { createDispatchers, startAlertWatch, type AlertWatch } from '@tickwork/worker';
import type { OutboundPolicy, SecretKeys } from '@tickwork/core';

declare module 'fastify' {
  interface FastifyInstance {
    alertWatch: AlertWatch;
  }
}

export interface AlertWatchPluginOptions {
  secretKeys: SecretKeys;
  policy: OutboundPolicy;
  intervalMs: number;
}

export default fp<AlertWatchPluginOptions>(
  async (app, options) => {
    const dispatchers = createDispatchers(options.policy);
    const watch = startAlertWatch({
      db: app.db,
      logger: app.log.child({ task: 'alert-watch' }),
      secretKeys: options.secretKeys,
      policy: options.policy,
      dispatchers,
      intervalMs: options.intervalMs,
    });
    app.decorate('alertWatch', watch);
    app.addHook('onClose', async () => {
      await watch.close();
      await Promise.allSettled([dispatchers.guarded.close(), dispatchers.allowListed.close()]);
    });
  },
  { name: 'alert-watch', dependencies: ['db'] },
);
