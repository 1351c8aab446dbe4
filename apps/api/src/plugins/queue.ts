import fp from 'fastify-plugin';
import { FireQueue, warnUnlessNoeviction } from '@tickwork/queue';

declare module 'fastify' {
  interface FastifyInstance {
    fireQueue: FireQueue;
  }
}

export interface QueuePluginOptions {
  redisUrl: string;
  prefix: string;
}

export default fp<QueuePluginOptions>(
  async (app, options) => {
    const fireQueue = new FireQueue({ redisUrl: options.redisUrl, prefix: options.prefix });
    app.decorate('fireQueue', fireQueue);
    // Not awaited: a Redis that is down must not stop the api from starting (ready says 503).
    app.addHook('onReady', async () => {
      void warnUnlessNoeviction(options.redisUrl, app.log);
    });
    app.addHook('onClose', async () => {
      await fireQueue.close();
    });
  },
  { name: 'queue' },
);
