import fp from 'fastify-plugin';
import { FireQueue } from '@tickwork/queue';

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
    app.addHook('onClose', async () => {
      await fireQueue.close();
    });
  },
  { name: 'queue' },
);
