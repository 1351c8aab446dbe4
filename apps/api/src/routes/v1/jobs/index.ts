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
  Ref,
  RunListQuery,
  RunListSchema,
  StringEnum,
  TickworkError,
  parseIdempotencyKey,
  requestFingerprint,
  toProblem,
  type SecretKeys,
} from '@tickwork/core';
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  releaseIdempotencyKey,
  type JobRow,
  type StoredResponse,
} from '@tickwork/db';
import { principalOf } from '../../../plugins/auth.ts';
import { toTickworkError } from '../../../plugins/errors.ts';
import { etagOf, jobDto, runDto } from '../../../serializers.ts';
import { pageBody } from '../../../page-cache.ts';
import { runsPage } from '../runs/page.ts';
import lifecycleRoutes from './lifecycle.ts';
import { success } from '../../../plugins/swagger.ts';
import { jsonTextAt } from '../../../plugins/validation.ts';
import historyRoutes from './history.ts';
import { JobParams, actorOf, afterIdOf } from './shared.ts';

/**
 * The answer to a GET of a job row, kept as long as the row object lives: a row the job cache
 * answers again is the same object, so its JSON and its ETag are made once, not on every read.
 * The body is kept as text, not bytes: Node writes a text body and the response's head as one
 * string in one `write`, where bytes go as a `writev` of two buffers. (A body that is already
 * text skips `preSerialization` hooks: a hook that must see every job belongs in `jobDto`.)
 */
const answers = new WeakMap<JobRow, { body: string; etag: string }>();

/** One item of a page of jobs, for the serializer of the list's rows (`page-cache.ts`). */
const JOB_ITEM: Record<string, unknown> = { ...Ref(JobSchema) };

/** Swagger UI's "Try it out" body for a create: a valid request. */
const CREATE_JOB_EXAMPLE = {
  name: 'nightly-report',
  description: 'Builds the report of the day before',
  schedule: { cron: '0 3 * * *', timezone: 'Europe/Berlin' },
  target: { url: 'https://example.com/hooks/report', body: { report: 'daily' } },
};

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

/** The answer to a create, as stored under an `Idempotency-Key` and sent again for a repeat. */
function created(row: JobRow, keys: SecretKeys): StoredResponse {
  return {
    statusCode: 201,
    headers: { location: `/v1/jobs/${row.id}`, etag: etagOf(row.version) },
    body: jobDto(row, keys),
  };
}

const jobs: FastifyPluginAsyncTypebox = async (app) => {
  await app.register(lifecycleRoutes);
  await app.register(historyRoutes);

  app.post(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'createJob',
        summary: 'Create a job',
        description:
          'Send `Idempotency-Key` to make retries safe: the same key with the same body gets the stored answer back ' +
          '(kept 24 h), another body 422, and a repeat while the first is running 409.',
        headers: Type.Object({
          'idempotency-key': Type.Optional(
            Type.String({ description: 'A unique key per logical request (1–255 visible ASCII characters).' }),
          ),
        }),
        body: Ref(CreateJobBody, { examples: [CREATE_JOB_EXAMPLE] }),
        response: {
          201: success(Ref(JobSchema), 'The job, created.', 'Location', 'ETag', 'IdempotentReplayed'),
          409: Ref(ProblemSchema),
          422: Ref(ProblemSchema),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { serviceId } = principal;
      const key = parseIdempotencyKey(request.headers['idempotency-key']);
      const send = (stored: StoredResponse) => {
        // A stored answer is one this route gave: its status is one of the documented ones.
        reply.code(stored.statusCode as 201).headers(stored.headers);
        return stored.body as never;
      };
      const bodyText = jsonTextAt(request, ['target', 'body']);
      const create = async () =>
        created(
          await app.jobs.withLog(request.log).by(actorOf(request)).create(principal, request.body, bodyText),
          app.secretKeys,
        );
      if (key === undefined) return send(await create());

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
        stored = await create();
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
        operationId: 'listJobs',
        summary: 'List jobs, newest first',
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
        response: { 200: success(Ref(JobListSchema), 'A page of jobs.') },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const { limit = 20, cursor, state, label, name } = request.query;
      const filter = { limit, afterId: afterIdOf(cursor), state, labels: parseLabels(label), namePrefix: name };
      const pages = app.caches.pages;
      if (pages) {
        // Rows serialized once per version (page-cache.ts), by the schema of one item of this route's.
        const toJson = reply.compileSerializationSchema(JOB_ITEM);
        const body = await pageBody(await app.jobs.listStamps(serviceId, filter), pages.jobs, {
          load: (ids) => app.jobs.stampedJobs(serviceId, ids),
          serialize: (row) => toJson(jobDto(row, app.secretKeys)),
          // A skip is shown until its instant passes.
          until: (row, now) => (row.skip_until && row.skip_until.getTime() > now ? row.skip_until.getTime() : Infinity),
        });
        return reply.type('application/json; charset=utf-8').send(body as never);
      }
      const page = await app.jobs.list(serviceId, filter);
      return { items: page.items.map((row) => jobDto(row, app.secretKeys)), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'getJob',
        summary: 'Get a job',
        params: JobParams,
        response: { 200: success(Ref(JobSchema), 'The job.', 'ETag') },
      },
    },
    (request, reply) => {
      const { serviceId } = principalOf(request);
      const answer = (row: JobRow) => {
        let kept = answers.get(row);
        if (kept === undefined) {
          // The route's own serializer (its response schema), so the text is what it would send.
          kept = { body: String(reply.serialize(jobDto(row, app.secretKeys))), etag: etagOf(row.version) };
          answers.set(row, kept);
        }
        reply.header('etag', kept.etag).type('application/json; charset=utf-8');
        // The type provider checks objects against the schema; this text is the schema's own output.
        return kept.body as unknown as ReturnType<typeof jobDto>;
      };
      // A row this instance holds is answered in the request's own turn; any other is read first.
      const cached = app.jobs.cached(serviceId, request.params.id);
      if (cached !== undefined) {
        reply.send(answer(cached));
        return;
      }
      return app.jobs.get(serviceId, request.params.id).then(answer);
    },
  );

  app.delete(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'deleteJob',
        summary: 'Delete a job; it never fires again',
        params: JobParams,
        response: { 204: Type.Null({ description: 'Deleted.' }) },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      await app.jobs.withLog(request.log).by(actorOf(request)).delete(serviceId, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/jobs/:id/runs',
    {
      schema: {
        tags: ['runs'],
        operationId: 'listJobRuns',
        summary: "A job's runs, newest first",
        params: JobParams,
        querystring: RunListQuery,
        response: { 200: success(Ref(RunListSchema), 'A page of runs.') },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const { limit = 20, cursor, status } = request.query;
      const filter = { limit, afterId: afterIdOf(cursor), status };
      const pages = app.caches.pages;
      if (pages) {
        const owner = await app.jobs.runOwnerOf(serviceId, request.params.id);
        return runsPage(app, reply, pages.runs, owner, filter);
      }
      const page = await app.jobs.runsOf(serviceId, request.params.id, filter);
      return { items: page.items.map(runDto), nextCursor: page.nextCursor };
    },
  );
};

export default jobs;
