/**
 * The routes of a job's life after its creation: PATCH (a new version), pause and resume, run
 * now, and the preview of its coming occurrences. Each maps HTTP to the jobs service tier
 * (`services/jobs.ts`), which owns the writes and the order of Postgres and Redis in each.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { JobSchema, NextRunsSchema, PatchJobBody, PauseJobBody, ProblemSchema, Ref, RunSchema } from '@tickwork/core';
import { principalOf } from '../../../plugins/auth.ts';
import { etagOf, jobDto, nextRunsDto, runDto } from '../../../serializers.ts';
import { success } from '../../../plugins/swagger.ts';
import { MERGE_PATCH, installJsonParser, jsonTextAt } from '../../../plugins/validation.ts';
import { JobParams, actorOf } from './shared.ts';

const lifecycle: FastifyPluginAsyncTypebox = async (app) => {
  // PATCH also takes RFC 7396's own media type.
  installJsonParser(app, MERGE_PATCH);

  app.patch(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'updateJob',
        summary: 'Update a job (JSON Merge Patch)',
        description:
          'Fields sent replace the stored ones; objects merge; null removes. `schedule` and `target.body` are ' +
          'replaced whole. The result is checked like a create. Send `If-Match: <ETag>` to refuse the change (412) ' +
          'when someone else changed the job first. Each change is a new version with a new scheduler; occurrences ' +
          'of the old one that still arrive are recorded `skipped` (`superseded`).',
        params: JobParams,
        headers: Type.Object({
          'if-match': Type.Optional(Type.String({ description: 'The ETag of the version you read: `W/"3"`.' })),
        }),
        consumes: ['application/json', MERGE_PATCH],
        body: Ref(PatchJobBody),
        response: {
          200: success(Ref(JobSchema), 'The job, changed (or as it was, when the patch changes nothing).', 'ETag'),
          409: Ref(ProblemSchema),
          412: Ref(ProblemSchema),
        },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const row = await app.jobs
        .withLog(request.log)
        .by(actorOf(request))
        .patch(
          serviceId,
          request.params.id,
          request.body,
          request.headers['if-match'],
          jsonTextAt(request, ['target', 'body']),
        );
      reply.header('etag', etagOf(row.version));
      return jobDto(row);
    },
  );

  app.post(
    '/jobs/:id/pause',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'pauseJob',
        summary: 'Pause a job; it fires nothing until resumed, or until `until` (idempotent)',
        description:
          'With `{ "until": <instant> }` the job resumes by itself at that instant (within about a second), and the ' +
          'occurrences from then on are delivered; without a body it stays paused until resumed. Pausing again as ' +
          'the job is paused already changes nothing; another `until` (or none) replaces the one in force. ' +
          'Occurrences already on their way are recorded `skipped` (`paused`). A completed job cannot be paused ' +
          '(409). The pause, and the resume at `until`, are in the version history.',
        params: JobParams,
        body: Type.Optional(Ref(PauseJobBody)),
        response: {
          200: success(Ref(JobSchema), 'The job, paused.', 'ETag'),
          400: Ref(ProblemSchema),
          409: Ref(ProblemSchema),
        },
      },
      // The body is optional: a POST without one is a pause without `until`.
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const row = await app.jobs
        .withLog(request.log)
        .by(actorOf(request))
        .pause(serviceId, request.params.id, request.body?.until);
      reply.header('etag', etagOf(row.version));
      return jobDto(row);
    },
  );

  app.post(
    '/jobs/:id/resume',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'resumeJob',
        summary: 'Resume a paused job from now on (idempotent)',
        description:
          'The job fires its next occurrence after now; what it missed while paused is not caught up. An interval ' +
          'keeps its phase. Resuming an active job changes nothing; a completed job cannot be resumed (409).',
        params: JobParams,
        response: { 200: success(Ref(JobSchema), 'The job, active again.', 'ETag'), 409: Ref(ProblemSchema) },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const row = await app.jobs.withLog(request.log).by(actorOf(request)).resume(serviceId, request.params.id);
      reply.header('etag', etagOf(row.version));
      return jobDto(row);
    },
  );

  app.post(
    '/jobs/:id/trigger',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'triggerJob',
        summary: 'Run now, outside the schedule',
        description:
          'Records a run (`trigger: manual`, `scheduledFor`: now) and delivers it at once with the job’s target and ' +
          'retry policy, whatever its state. The schedule does not move, and the run does not count towards ' +
          '`maxRuns`.',
        params: JobParams,
        response: { 202: success(Ref(RunSchema), 'The run, recorded and on its way.', 'Location') },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const run = await app.jobs.withLog(request.log).by(actorOf(request)).trigger(serviceId, request.params.id);
      reply.code(202).header('location', `/v1/runs/${run.id}`);
      return runDto(run);
    },
  );

  app.get(
    '/jobs/:id/next-runs',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'listJobNextRuns',
        summary: 'The coming occurrence times of a job',
        description:
          'Inside its window and within `maxRuns`; empty when the job is paused or completed. Days the job’s ' +
          'calendars exclude are left out; with `includeExcluded=true`, `occurrences` lists the next `count` ' +
          'occurrences, excluded ones marked, and `nextRuns` those of them that fire.',
        params: JobParams,
        querystring: Type.Object(
          {
            count: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })),
            includeExcluded: Type.Optional(
              Type.Boolean({ default: false, description: 'Also list the occurrences the calendars exclude, marked.' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: success(Ref(NextRunsSchema), 'The coming occurrence times.') },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const includeExcluded = request.query.includeExcluded === true;
      const occurrences = await app.jobs.nextRuns(serviceId, request.params.id, request.query.count ?? 10, {
        includeExcluded,
      });
      return nextRunsDto(occurrences, includeExcluded);
    },
  );
};

export default lifecycle;
