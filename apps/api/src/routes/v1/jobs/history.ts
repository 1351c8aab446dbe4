/**
 * A job's version history and its skip (issue 16 §2, §4): `GET /v1/jobs/{id}/versions` and
 * `POST /v1/jobs/{id}/skip`. The pause with `until` is with the other pause in `lifecycle.ts`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { JobSchema, JobVersionListSchema, PageQuery, ProblemSchema, Ref, SkipJobBody } from '@tickwork/core';
import { principalOf } from '../../../plugins/auth.ts';
import { success } from '../../../plugins/swagger.ts';
import { etagOf, jobDto } from '../../../serializers.ts';
import { versionDto } from '../../../services/history.ts';
import { JobParams, actorOf, afterIdOf } from './shared.ts';

const history: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/jobs/:id/versions',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'listJobVersions',
        summary: "A job's version history, newest first",
        description:
          'One entry per change (`create`, `patch`, `pause`, `resume`, `trigger`, `delete`, `skip`), with who made ' +
          'it and the whole job as it stood after it (for `delete`, as it was). A deleted job’s history stays ' +
          'readable for `RUN_RETENTION_DAYS` after the delete. Cursor-paged: pass the `nextCursor` of a page as ' +
          '`cursor` to get the next one.',
        params: JobParams,
        querystring: Type.Object(PageQuery, { additionalProperties: false }),
        response: { 200: success(Ref(JobVersionListSchema), 'A page of the history.') },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const { limit = 20, cursor } = request.query;
      const afterId = afterIdOf(cursor);
      const page = await app.jobs.versions(serviceId, request.params.id, {
        limit,
        ...(afterId === undefined ? {} : { afterId }),
      });
      return { items: page.items.map(versionDto), nextCursor: page.nextCursor };
    },
  );

  app.post(
    '/jobs/:id/skip',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'skipJob',
        summary: 'Skip the next occurrences of a job',
        description:
          'With `{ "count": n }` the next n occurrences (as the schedule stands now; after a pause with `until`, ' +
          'from its end), with `{ "until": <instant> }` every occurrence scheduled before that instant, are ' +
          'recorded as runs `skipped` (`requested`) when they come due, and not delivered. The job shows the skip ' +
          'as `skipUntil`. A skip replaces the one in force; `{ "count": 0 }` ends it. Run now is not affected. A ' +
          'completed job, or one with no occurrence left, cannot skip (409). The skip is in the version history.',
        params: JobParams,
        body: Ref(SkipJobBody, { examples: [{ count: 1 }] }),
        response: {
          200: success(Ref(JobSchema), 'The job, with its skip.', 'ETag'),
          400: Ref(ProblemSchema),
          409: Ref(ProblemSchema),
        },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const row = await app.jobs
        .withLog(request.log)
        .by(actorOf(request))
        .skip(serviceId, request.params.id, request.body);
      reply.header('etag', etagOf(row.version));
      return jobDto(row);
    },
  );
};

export default history;
