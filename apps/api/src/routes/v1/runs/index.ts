import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ProblemSchema, RunListQuery, RunListSchema, RunSchema } from '@tickwork/core';
import { principalOf } from '../../../plugins/auth.ts';
import { runDto } from '../../../serializers.ts';
import { afterIdOf } from '../jobs/shared.ts';

const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 503: ProblemSchema };

const runs: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/runs',
    {
      schema: {
        tags: ['runs'],
        summary: 'Runs of all your jobs, newest first; `status=dead` is the dead-letter list',
        description: 'Cursor-paged: pass the `nextCursor` of a page as `cursor` to get the next one.',
        security: [{ apiKey: [] }],
        querystring: RunListQuery,
        response: { 200: RunListSchema, ...errors },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const { limit = 20, cursor, status } = request.query;
      const page = await app.jobs.runs(serviceId, { limit, afterId: afterIdOf(cursor), status });
      return { items: page.items.map(runDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/runs/:id',
    {
      schema: {
        tags: ['runs'],
        summary: 'Get a run',
        security: [{ apiKey: [] }],
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 200: RunSchema, ...errors },
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
        summary: 'Deliver a dead or failed run again, as a new run',
        description:
          'Records a new run (`trigger: replay`, `replayOf`: this run, `scheduledFor`: now, its own `webhook-id`) and delivers it at once with the job’s current target and retry policy. Only `dead` and `failed` runs can be replayed (409 otherwise).',
        security: [{ apiKey: [] }],
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 202: RunSchema, ...errors, 409: ProblemSchema },
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
