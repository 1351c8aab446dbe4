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
    /**
     * Read your writes through every instance, after a committed change of a job: the request's
     * write marks are raised (with a read replica), then a barrier carrying the job's
     * invalidation is acknowledged by every instance, or the job cache's TTL runs out, whichever
     * comes first. Either way no instance answers the old row once this resolves. Never fails.
     */
    announceJobChange: (serviceId: string, jobId: string) => Promise<void>;
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
    app.decorate('announceJobChange', async (serviceId: string, jobId: string) => {
      if (!jobs) return; // the read router's marks are raised by its onSend hook
      // The marks first: a row another instance reads after the barrier reaches it is read
      // from where they say (the primary, or a replica that has replayed the change).
      await app.readRouter?.markWritten([`svc:${serviceId}`, 'all']).catch((error: unknown) => {
        app.log.warn({ err: error }, 'could not record the write mark; a replica read may lag behind it');
      });
      // A stale row can only come from a read begun before this instant.
      const marked = Date.now();
      const barrier = bus?.live
        ? bus.barrier({ invalidate: [`j:${jobId}`], timeoutMs: jobs.ttlMs }).then(
            () => true,
            (error: unknown) => {
              app.log.warn({ err: error, jobId }, 'a job change was not acknowledged; answering after the cache TTL');
              return false;
            },
          )
        : Promise.resolve(false);
      if (await barrier) return;
      // An instance did not answer (stalled, or this one is not listening): a row read before the
      // change (and the marks) is dropped once the TTL has passed since the read began.
      const left = jobs.ttlMs + 1 - (Date.now() - marked);
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
    });
  },
  { name: 'cache', dependencies: ['db'] },
);
