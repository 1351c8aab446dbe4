import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ProblemSchema, Ref, RunListQuery, RunListSchema, RunSchema } from '@tickwork/core';
import { principalOf } from '../../../plugins/auth.ts';
import { runDto } from '../../../serializers.ts';
import { success } from '../../../plugins/swagger.ts';
import { afterIdOf } from '../jobs/shared.ts';
import { runsPage } from './page.ts';

const runs: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/runs',
    {
      schema: {
        tags: ['runs'],
        operationId: 'listRuns',
        summary: 'Runs of all your jobs, newest first; `status=dead` is the dead-letter list',
        description: 'Cursor-paged: pass the `nextCursor` of a page as `cursor` to get the next one.',
        querystring: RunListQuery,
        response: { 200: success(Ref(RunListSchema), 'A page of runs.') },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const { limit = 20, cursor, status } = request.query;
      const filter = { limit, afterId: afterIdOf(cursor), status };
      const pages = app.caches.pages;
      if (pages) return runsPage(app, reply, pages.runs, { column: 'service_id', id: serviceId }, filter);
      const page = await app.jobs.runs(serviceId, filter);
      return { items: page.items.map(runDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/runs/:id',
    {
      schema: {
        tags: ['runs'],
        operationId: 'getRun',
        summary: 'Get a run',
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 200: success(Ref(RunSchema), 'The run.') },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      return runDto(await app.jobs.run(serviceId, request.params.id));
    },
  );

  app.post(
    '/runs/:id/replay',
    {
      schema: {
        tags: ['runs'],
        operationId: 'replayRun',
        summary: 'Deliver a dead or failed run again, as a new run',
        description:
          'Records a new run (`trigger: replay`, `replayOf`: this run, `scheduledFor`: now, its own `webhook-id`) ' +
          'and delivers it at once with the job’s current target and retry policy. Only `dead` and `failed` runs ' +
          'can be replayed (409 otherwise).',
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: {
          202: success(Ref(RunSchema), 'The new run, recorded and on its way.', 'Location'),
          409: Ref(ProblemSchema),
        },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const run = await app.jobs.withLog(request.log).replay(serviceId, request.params.id);
      reply.code(202).header('location', `/v1/runs/${run.id}`);
      return runDto(run);
    },
  );
};

export default runs;
