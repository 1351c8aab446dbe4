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
  isMaxJobsViolation,
  isUniqueViolation,
  listJobs,
  listRunsOfJob,
  releaseIdempotencyKey,
  type JobRow,
  type Principal,
  type StoredResponse,
} from '@tickwork/db';
import type { FastifyInstance } from 'fastify';
import { principalOf } from '../../../plugins/auth.ts';
import { toTickworkError } from '../../../plugins/errors.ts';
import { etagOf, jobDto, runDto } from '../../../serializers.ts';
import lifecycleRoutes from './lifecycle.ts';
import { JobParams, afterIdOf, jobErrors, nameTaken } from './shared.ts';

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

/**
 * Creates a job: its schedule in Redis first, then its row in one statement. The row is the
 * job: a scheduler without one fires nothing (a worker drops occurrences of jobs Postgres does
 * not have, and the reconciler removes such a scheduler once it is old), so a create that fails
 * after the registration (name taken, quota full, Postgres away, the process killed) takes the
 * scheduler back or leaves it to the reconciler. A job is acknowledged only after its INSERT
 * committed; a Redis failure writes nothing.
 */
async function createJob(app: FastifyInstance, principal: Principal, body: CreateJobBody): Promise<StoredResponse> {
  const { serviceId } = principal;
  const now = Date.now();
  const spec = buildJobSpec(body, { now, limits: { minIntervalMs: principal.minIntervalMs } });
  const id = uuidv7(now);
  const draft = { ...spec, id, serviceId, state: 'active' as JobState, version: 1, createdAt: now, updatedAt: now };
  const nextRunAt = nextRunOf(draft, now);
  // A window that holds no occurrence (endAt before the first one) makes a job that is done already.
  const state: JobState = body.paused ? 'paused' : nextRunAt === null ? 'completed' : 'active';
  await app.fireQueue.register({ ...draft, state }, now);
  let row: JobRow;
  try {
    // One statement, its own transaction: the maxJobs quota is counted inside its COMMIT (a
    // deferred trigger, migration 0003), so racing creates can never pass it.
    row = await insertJob(app.db, {
      ...spec,
      id,
      serviceId,
      state,
      now: new Date(now),
      nextRunAt: nextRunAt === null || state !== 'active' ? null : new Date(nextRunAt),
    });
  } catch (error) {
    void app.fireQueue.unregister(id, 1).catch((cleanupError: unknown) => {
      app.log.warn(
        { err: cleanupError, jobId: id },
        'could not remove the scheduler of a job not created; the reconciler will',
      );
    });
    if (isUniqueViolation(error)) throw nameTaken(spec.name);
    if (isMaxJobsViolation(error)) throw await maxJobsExceeded(app, serviceId);
    throw error;
  }
  return {
    statusCode: 201,
    headers: { location: `/v1/jobs/${row.id}`, etag: etagOf(row.version) },
    body: jobDto(row),
  };
}

async function maxJobsExceeded(app: FastifyInstance, serviceId: string): Promise<TickworkError> {
  const service = await findServiceById(app.db, serviceId).catch(() => undefined);
  return quotaExceeded(
    'maxJobs',
    service ? `This service may hold at most ${service.max_jobs} jobs.` : 'This service holds its maximum of jobs.',
  );
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
          'idempotency-key': Type.Optional(
            Type.String({ description: 'A unique key per logical request (1–255 visible ASCII characters).' }),
          ),
        }),
        body: CreateJobBody,
        response: { 201: JobSchema, ...errors, 409: ProblemSchema, 422: ProblemSchema },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { serviceId } = principal;
      const key = parseIdempotencyKey(request.headers['idempotency-key']);
      const send = (stored: StoredResponse) => {
        reply.code(stored.statusCode).headers(stored.headers);
        return stored.body as never;
      };
      if (key === undefined) return send(await createJob(app, principal, request.body));

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
          throw new TickworkError(
            'conflict',
            'A request with this Idempotency-Key is still being processed; retry shortly.',
          );
        }
        reply.header('idempotent-replayed', 'true');
        return send(claim.response);
      }
      let stored: StoredResponse;
      try {
        stored = await createJob(app, principal, request.body);
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
            label: Type.Optional(
              Type.Array(Type.String({ maxLength: 320 }), {
                maxItems: 10,
                description: 'key:value; repeat to require several.',
              }),
            ),
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
