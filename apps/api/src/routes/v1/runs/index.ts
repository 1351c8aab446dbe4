import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PageQuery, ProblemSchema, RUN_STATUSES, RunListSchema, RunSchema, StringEnum, TickworkError } from '@tickwork/core';
import { findRun, listRunsOfService } from '@tickwork/db';
import { principalOf } from '../../../plugins/auth.ts';
import { runDto } from '../../../serializers.ts';
import { afterIdOf } from '../jobs/index.ts';

const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 503: ProblemSchema };

const runs: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('preHandler', app.authenticate);

  app.get(
    '/runs',
    {
      schema: {
        tags: ['runs'],
        summary: 'Runs of all your jobs, newest first; `status=dead` is the dead-letter list',
        security: [{ apiKey: [] }],
        querystring: Type.Object(
          { ...PageQuery, status: Type.Optional(StringEnum(RUN_STATUSES)) },
          { additionalProperties: false },
        ),
        response: { 200: RunListSchema, ...errors },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const { limit = 20, cursor, status } = request.query;
      const page = await listRunsOfService(app.readDb, serviceId, { limit, afterId: afterIdOf(cursor), status });
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
      const row = await findRun(app.readDb, serviceId, request.params.id);
      if (!row) throw new TickworkError('not_found', `No run ${request.params.id}.`);
      return runDto(row);
    },
  );
};

export default runs;
