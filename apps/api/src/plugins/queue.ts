import fp from 'fastify-plugin';
import { FireQueue, type RedisTarget, warnUnlessNoeviction } from '@tickwork/queue';

declare module 'fastify' {
  interface FastifyInstance {
    fireQueue: FireQueue;
  }
}

export interface QueuePluginOptions {
  redis: RedisTarget;
  prefix: string;
  /** FIRE_QUEUE_SHARDS. */
  shards: number;
  /**
   * ioredis auto-pipelining on the queue's connection (single Redis only), so the Redis calls of
   * concurrent creates share socket writes. @defaultValue true (`TICKWORK_REDIS_AUTOPIPELINE=off`)
   */
  autoPipelining?: boolean;
}

export default fp<QueuePluginOptions>(
  async (app, options) => {
    const fireQueue = new FireQueue({
      redisUrl: options.redis,
      prefix: options.prefix,
      shards: options.shards,
      autoPipelining: options.autoPipelining ?? process.env.TICKWORK_REDIS_AUTOPIPELINE !== 'off',
    });
    app.decorate('fireQueue', fireQueue);
    // Not awaited: a Redis that is down must not stop the api from starting (ready says 503).
    app.addHook('onReady', async () => {
      void warnUnlessNoeviction(options.redis, app.log);
      // Workers consume the fire queues Redis lists: this shard count's are among them from now on.
      void fireQueue.announce().catch(() => {});
    });
    app.addHook('onClose', async () => {
      await fireQueue.close();
    });
  },
  { name: 'queue' },
);
