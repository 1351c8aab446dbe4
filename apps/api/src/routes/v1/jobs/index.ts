import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  CreateJobBody,
  IDEMPOTENCY_STALE_MS,
  IDEMPOTENCY_TTL_MS,
  JOB_STATES,
  JobListSchema,
  JobSchema,
  PageQuery,
  ProblemSchema,
  RunListQuery,
  RunListSchema,
  StringEnum,
  TickworkError,
  buildJobSpec,
  nextRunOf,
  quotaExceeded,
  parseIdempotencyKey,
  requestFingerprint,
  toProblem,
  uuidv7,
  type JobState,
} from '@tickwork/core';
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  deleteJob,
  findJob,
  findServiceById,
  insertJob,
  jobFromRow,
  listJobs,
  listRunsOfJob,
  releaseIdempotencyKey,
  type StoredResponse,
} from '@tickwork/db';
import type { FastifyInstance } from 'fastify';
import { principalOf } from '../../../plugins/auth.ts';
import { toTickworkError } from '../../../plugins/errors.ts';
import { etagOf, jobDto, runDto } from '../../../serializers.ts';
import lifecycleRoutes from './lifecycle.ts';
import { JobParams, afterIdOf, isMaxJobsViolation, isUniqueViolation, jobErrors, nameTaken } from './shared.ts';

const errors = jobErrors;

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

/** Creates a job: Postgres first, Redis inside the transaction, commit last. */
async function createJob(app: FastifyInstance, serviceId: string, body: CreateJobBody): Promise<StoredResponse> {
  const service = await findServiceById(app.db, serviceId);
  if (!service) throw new TickworkError('unauthorized', 'The API key is not valid.');
  const now = Date.now();
  const spec = buildJobSpec(body, { now, limits: { minIntervalMs: service.min_interval_ms } });
  const id = uuidv7(now);
  const draft = { ...spec, id, serviceId, state: 'active' as JobState, version: 1, createdAt: now, updatedAt: now };
  const nextRunAt = nextRunOf(draft, now);
  // A window that holds no occurrence (endAt before the first one) makes a job that is done already.
  const state: JobState = body.paused ? 'paused' : nextRunAt === null ? 'completed' : 'active';
  const full = () => quotaExceeded('maxJobs', `This service may hold at most ${service.max_jobs} jobs.`);
  // A full service is refused before any work; the count at COMMIT is the exact check.
  if (service.job_count >= service.max_jobs) throw full();
  // A job is acknowledged only after its commit, and a failed Redis call rolls the row back.
  const row = await app.db
    .transaction()
    .execute(async (trx) => {
      const inserted = await insertJob(trx, {
        ...spec,
        id,
        serviceId,
        state,
        now: new Date(now),
        nextRunAt: nextRunAt === null || state !== 'active' ? null : new Date(nextRunAt),
      });
      await app.fireQueue.register(jobFromRow(inserted), now);
      // The quota is counted inside COMMIT (a deferred trigger): a full service fails it.
      return inserted;
    })
    .catch(async (error: unknown) => {
      if (isUniqueViolation(error)) throw nameTaken(spec.name);
      if (isMaxJobsViolation(error)) error = full();
      // Redis may hold the schedule already (a full quota, or a commit that failed after the
      // registration): take it back, without making the client wait (a worker drops occurrences
      // of jobs Postgres does not have).
      void app.fireQueue.unregister(id, 1).catch((cleanupError: unknown) => {
        app.log.warn({ err: cleanupError, jobId: id }, 'could not remove the scheduler of a rolled-back job');
      });
      throw error;
    });
  return {
    statusCode: 201,
    headers: { location: `/v1/jobs/${row.id}`, etag: etagOf(row.version) },
    body: jobDto(row),
  };
}

const jobs: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('preHandler', app.authenticate);
  await app.register(lifecycleRoutes);

  app.post(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Create a job',
        description:
          'Send `Idempotency-Key` to make retries safe: the same key with the same body gets the stored answer back (kept 24 h), another body 422, and a repeat while the first is running 409.',
        security: [{ apiKey: [] }],
        headers: Type.Object({
          'idempotency-key': Type.Optional(Type.String({ description: 'A unique key per logical request (1–255 visible ASCII characters).' })),
        }),
        body: CreateJobBody,
        response: { 201: JobSchema, ...errors, 409: ProblemSchema, 422: ProblemSchema },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const key = parseIdempotencyKey(request.headers['idempotency-key']);
      const send = (stored: StoredResponse) => {
        reply.code(stored.statusCode).headers(stored.headers);
        return stored.body as never;
      };
      if (key === undefined) return send(await createJob(app, serviceId, request.body));

      // Idempotency-Key (IETF draft): one request per (service, key) runs; a repeat with the same
      // body gets the stored answer, another body 422, and a repeat while the first runs 409.
      const fingerprint = requestFingerprint('POST', '/v1/jobs', request.body);
      const claim = await claimIdempotencyKey(app.db, {
        serviceId,
        key,
        fingerprint,
        ttlMs: IDEMPOTENCY_TTL_MS,
        staleMs: IDEMPOTENCY_STALE_MS,
      });
      if (claim.kind !== 'claimed') {
        if (claim.fingerprint !== fingerprint) {
          throw new TickworkError('unprocessable', 'This Idempotency-Key was used with a different request body.', {
            errors: [{ field: 'headers.idempotency-key', message: 'was used with a different request body' }],
          });
        }
        if (claim.kind === 'in_flight') {
          reply.header('retry-after', '1');
          throw new TickworkError('conflict', 'A request with this Idempotency-Key is still being processed; retry shortly.');
        }
        reply.header('idempotent-replayed', 'true');
        return send(claim.response);
      }
      let stored: StoredResponse;
      try {
        stored = await createJob(app, serviceId, request.body);
      } catch (error) {
        const mapped = toTickworkError(error);
        if (mapped.status >= 500) {
          // Worth retrying: give the key back so the retry runs afresh.
          await releaseIdempotencyKey(app.db, serviceId, key).catch(() => {});
        } else {
          await completeIdempotencyKey(app.db, serviceId, key, {
            statusCode: mapped.status,
            headers: { 'content-type': 'application/problem+json' },
            body: toProblem(mapped, '/v1/jobs'),
          }).catch(() => releaseIdempotencyKey(app.db, serviceId, key).catch(() => {}));
        }
        throw error;
      }
      await completeIdempotencyKey(app.db, serviceId, key, stored);
      return send(stored);
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
        querystring: RunListQuery,
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
