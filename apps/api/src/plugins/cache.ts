/**
 * The in-process caches of an api instance (`auth-cache.ts`) and the cache bus that keeps them
 * true (`CacheBus`: LISTEN on the primary). `TICKWORK_AUTH_CACHE=off` looks every key up in
 * Postgres, `TICKWORK_JOB_CACHE=off` every job; with both off no bus is started. List pages keep
 * their rows serialized (`page-cache.ts`, checked against each row's version, no bus needed);
 * `TICKWORK_PAGE_CACHE=off` serializes every row of every page.
 */
import fp from 'fastify-plugin';
import { CacheBus } from '@tickwork/db';
import { JobCache, PrincipalCache } from '../auth-cache.ts';
import { SerializedRows } from '../page-cache.ts';

declare module 'fastify' {
  interface FastifyInstance {
    caches: {
      bus: CacheBus | undefined;
      principals: PrincipalCache | undefined;
      jobs: JobCache | undefined;
      /** Serialized rows of list pages, by id and row version. */
      pages: { jobs: SerializedRows; runs: SerializedRows } | undefined;
    };
  }
}

export interface CachePluginOptions {
  /** The primary: notifications are sent where changes commit. */
  url: string;
}

export default fp<CachePluginOptions>(
  async (app, options) => {
    const principalsOn = process.env.TICKWORK_AUTH_CACHE !== 'off';
    const jobsOn = process.env.TICKWORK_JOB_CACHE !== 'off';
    let principals: PrincipalCache | undefined;
    let jobs: JobCache | undefined;
    const bus =
      principalsOn || jobsOn
        ? new CacheBus({
            url: options.url,
            onInvalidate: (message) => {
              if (message === 'a') principals?.clear();
              else if (message.startsWith('j:')) jobs?.delete(message.slice(2));
            },
            onReset: () => {
              principals?.clear();
              jobs?.clear();
            },
          })
        : undefined;
    if (bus) {
      if (principalsOn) principals = new PrincipalCache(bus);
      if (jobsOn) jobs = new JobCache(bus);
      await bus.start();
      app.addHook('onClose', () => bus.close());
    }
    const pages =
      process.env.TICKWORK_PAGE_CACHE === 'off'
        ? undefined
        : { jobs: new SerializedRows(), runs: new SerializedRows() };
    app.decorate('caches', { bus, principals, jobs, pages });
  },
  { name: 'cache', dependencies: ['db'] },
);
