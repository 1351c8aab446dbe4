import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  CreateJobBody,
  JOB_STATES,
  JobListSchema,
  JobSchema,
  PageQuery,
  ProblemSchema,
  RUN_STATUSES,
  RunListSchema,
  StringEnum,
  TickworkError,
  buildJobSpec,
  nextRunOf,
  quotaExceeded,
  uuidv7,
  type JobState,
} from '@tickwork/core';
import {
  decodeCursor,
  deleteJob,
  findJob,
  findServiceById,
  insertJob,
  jobFromRow,
  listJobs,
  listRunsOfJob,
  lockServiceQuota,
} from '@tickwork/db';
import { principalOf } from '../../../plugins/auth.ts';
import { etagOf, jobDto, runDto } from '../../../serializers.ts';

const JobParams = Type.Object({ id: Type.String({ format: 'uuid' }) });
const errors = {
  400: ProblemSchema,
  401: ProblemSchema,
  403: ProblemSchema,
  404: ProblemSchema,
  503: ProblemSchema,
};

export function afterIdOf(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = decodeCursor(cursor);
  if (!id) throw new TickworkError('validation_failed', 'cursor is not valid', { errors: [{ field: 'querystring.cursor', message: 'is not a cursor this API returned' }] });
  return id;
}

function parseLabels(values: string[] | undefined): Record<string, string> | undefined {
  if (!values || values.length === 0) return undefined;
  const labels: Record<string, string> = {};
  for (const value of values) {
    const at = value.indexOf(':');
    if (at <= 0) {
      throw new TickworkError('validation_failed', 'label filters are key:value', {
        errors: [{ field: 'querystring.label', message: `"${value}" is not key:value` }],
      });
    }
    labels[value.slice(0, at)] = value.slice(at + 1);
  }
  return labels;
}

function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: string }).code === '23505';
}

const jobs: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('preHandler', app.authenticate);

  app.post(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Create a job',
        security: [{ apiKey: [] }],
        body: CreateJobBody,
        response: { 201: JobSchema, ...errors, 409: ProblemSchema },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const service = await findServiceById(app.db, serviceId);
      if (!service) throw new TickworkError('unauthorized', 'The API key is not valid.');
      const now = Date.now();
      const spec = buildJobSpec(request.body, { now, limits: { minIntervalMs: service.min_interval_ms } });
      const id = uuidv7(now);
      const state: JobState = request.body.paused ? 'paused' : 'active';
      const draft = { ...spec, id, serviceId, state, version: 1, createdAt: now, updatedAt: now };
      const nextRunAt = nextRunOf(draft, now);
      // Postgres first, Redis inside the transaction, commit last: a job is acknowledged only after
      // its commit, and a failed Redis call rolls the row back.
      const row = await app.db
        .transaction()
        .execute(async (trx) => {
          // Counted under a lock on the service row: two creates at once cannot both take the last slot.
          const quota = await lockServiceQuota(trx, serviceId);
          if (quota && quota.jobCount >= quota.maxJobs) {
            throw quotaExceeded('maxJobs', `This service may hold at most ${quota.maxJobs} jobs.`);
          }
          const inserted = await insertJob(trx, {
            ...spec,
            id,
            serviceId,
            state,
            now: new Date(now),
            nextRunAt: nextRunAt === null ? null : new Date(nextRunAt),
          });
          await app.fireQueue.register(jobFromRow(inserted), now);
          return inserted;
        })
        .catch(async (error: unknown) => {
          if (error instanceof TickworkError && error.code === 'quota_exceeded') throw error;
          if (isUniqueViolation(error)) {
            throw new TickworkError('conflict', `A job named "${spec.name}" already exists in this service.`, {
              errors: [{ field: 'name', message: 'is already taken' }],
            });
          }
          // The commit may have failed after Redis accepted the schedule: take it back, without
          // making the client wait (a worker drops occurrences of jobs Postgres does not have).
          void app.fireQueue.unregister(id, 1).catch((cleanupError: unknown) => {
            request.log.warn({ err: cleanupError, jobId: id }, 'could not remove the scheduler of a rolled-back job');
          });
          throw error;
        });
      reply.code(201).header('location', `/v1/jobs/${row.id}`).header('etag', etagOf(row.version));
      return jobDto(row);
    },
  );

  app.get(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'List jobs, newest first',
        security: [{ apiKey: [] }],
        querystring: Type.Object(
          {
            ...PageQuery,
            state: Type.Optional(StringEnum(JOB_STATES)),
            label: Type.Optional(Type.Array(Type.String({ maxLength: 320 }), { maxItems: 10, description: 'key:value; repeat to require several.' })),
            name: Type.Optional(Type.String({ maxLength: 200, description: 'Name prefix.' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: JobListSchema, ...errors },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const { limit = 20, cursor, state, label, name } = request.query;
      const page = await listJobs(app.readDb, serviceId, {
        limit,
        afterId: afterIdOf(cursor),
        state,
        labels: parseLabels(label),
        namePrefix: name,
      });
      return { items: page.items.map(jobDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Get a job',
        security: [{ apiKey: [] }],
        params: JobParams,
        response: { 200: JobSchema, ...errors },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const row = await findJob(app.readDb, serviceId, request.params.id);
      if (!row) throw new TickworkError('not_found', `No job ${request.params.id}.`);
      reply.header('etag', etagOf(row.version));
      return jobDto(row);
    },
  );

  app.delete(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Delete a job; it never fires again',
        security: [{ apiKey: [] }],
        params: JobParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const removed = await deleteJob(app.db, serviceId, request.params.id);
      if (!removed) throw new TickworkError('not_found', `No job ${request.params.id}.`);
      // Workers deliver nothing for a job Postgres no longer has, so a Redis failure here only
      // leaves an orphan for the reconciler; the delete itself stands.
      await app.fireQueue.unregister(removed.id, removed.version).catch((error: unknown) => {
        request.log.warn({ err: error, jobId: removed.id }, 'could not remove the scheduler; the reconciler will');
      });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/jobs/:id/runs',
    {
      schema: {
        tags: ['runs'],
        summary: "A job's runs, newest first",
        security: [{ apiKey: [] }],
        params: JobParams,
        querystring: Type.Object(
          { ...PageQuery, status: Type.Optional(StringEnum(RUN_STATUSES)) },
          { additionalProperties: false },
        ),
        response: { 200: RunListSchema, ...errors },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const job = await findJob(app.readDb, serviceId, request.params.id);
      if (!job) throw new TickworkError('not_found', `No job ${request.params.id}.`);
      const { limit = 20, cursor, status } = request.query;
      const page = await listRunsOfJob(app.readDb, job.id, { limit, afterId: afterIdOf(cursor), status });
      return { items: page.items.map(runDto), nextCursor: page.nextCursor };
    },
  );
};

export default jobs;
