/**
 * The routes of a job's life after its creation: PATCH (a new version), pause and resume, run
 * now, and the preview of its coming occurrences. Each maps HTTP to the jobs service tier
 * (`services/jobs.ts`), which owns the writes and the order of Postgres and Redis in each.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { NextRunsSchema, JobSchema, PatchJobBody, ProblemSchema, RunSchema } from '@tickwork/core';
import { principalOf } from '../../../plugins/auth.ts';
import { etagOf, jobDto, runDto } from '../../../serializers.ts';
import { JobParams, jobErrors as errors } from './shared.ts';

const lifecycle: FastifyPluginAsyncTypebox = async (app) => {
  // PATCH also takes RFC 7396's own media type.
  app.addContentTypeParser(
    'application/merge-patch+json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );

  app.patch(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Update a job (JSON Merge Patch)',
        description:
          'Fields sent replace the stored ones; objects merge; null removes. `schedule` and `target.body` are replaced whole. The result is checked like a create. Send `If-Match: <ETag>` to refuse the change (412) when someone else changed the job first. Each change is a new version with a new scheduler; occurrences of the old one that still arrive are recorded `skipped` (`superseded`).',
        security: [{ apiKey: [] }],
        params: JobParams,
        headers: Type.Object({
          'if-match': Type.Optional(Type.String({ description: 'The ETag of the version you read: `W/"3"`.' })),
        }),
        body: PatchJobBody,
        response: { 200: JobSchema, ...errors, 409: ProblemSchema, 412: ProblemSchema },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const row = await app.jobs
        .withLog(request.log)
        .patch(serviceId, request.params.id, request.body, request.headers['if-match']);
      reply.header('etag', etagOf(row.version));
      return jobDto(row);
    },
  );

  app.post(
    '/jobs/:id/pause',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Pause a job; it fires nothing until resumed (idempotent)',
        description:
          'Pausing a paused job changes nothing. Occurrences already on their way are recorded `skipped` (`paused`). A completed job cannot be paused (409).',
        security: [{ apiKey: [] }],
        params: JobParams,
        response: { 200: JobSchema, ...errors, 409: ProblemSchema },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const row = await app.jobs.withLog(request.log).pause(serviceId, request.params.id);
      reply.header('etag', etagOf(row.version));
      return jobDto(row);
    },
  );

  app.post(
    '/jobs/:id/resume',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Resume a paused job from now on (idempotent)',
        description:
          'The job fires its next occurrence after now; what it missed while paused is not caught up. An interval keeps its phase. Resuming an active job changes nothing; a completed job cannot be resumed (409).',
        security: [{ apiKey: [] }],
        params: JobParams,
        response: { 200: JobSchema, ...errors, 409: ProblemSchema },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const row = await app.jobs.withLog(request.log).resume(serviceId, request.params.id);
      reply.header('etag', etagOf(row.version));
      return jobDto(row);
    },
  );

  app.post(
    '/jobs/:id/trigger',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Run now, outside the schedule',
        description:
          'Records a run (`trigger: manual`, `scheduledFor`: now) and delivers it at once with the job’s target and retry policy, whatever its state. The schedule does not move, and the run does not count towards `maxRuns`.',
        security: [{ apiKey: [] }],
        params: JobParams,
        response: { 202: RunSchema, ...errors },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const run = await app.jobs.withLog(request.log).trigger(serviceId, request.params.id);
      reply.code(202).header('location', `/v1/runs/${run.id}`);
      return runDto(run);
    },
  );

  app.get(
    '/jobs/:id/next-runs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'The coming occurrence times of a job',
        description: 'Inside its window and within `maxRuns`; empty when the job is paused or completed.',
        security: [{ apiKey: [] }],
        params: JobParams,
        querystring: Type.Object(
          { count: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })) },
          { additionalProperties: false },
        ),
        response: { 200: NextRunsSchema, ...errors },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const times = await app.jobs.nextRuns(serviceId, request.params.id, request.query.count ?? 10);
      return { nextRuns: times.map((t) => new Date(t).toISOString()) };
    },
  );
};

export default lifecycle;
