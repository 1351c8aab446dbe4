/**
 * A job's life after its creation: PATCH (a new version, re-registered), pause and resume, run
 * now, and the preview of its coming occurrences. Every change locks the job's row, writes the
 * next version and swaps its BullMQ registration inside the transaction, so Postgres and Redis
 * change together or not at all (Redis away → rollback → 503).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  NextRunsSchema,
  JobSchema,
  PatchJobBody,
  ProblemSchema,
  RunSchema,
  TickworkError,
  applyJobPatch,
  buildJobSpec,
  canonicalJson,
  ifMatchAllows,
  nextOccurrences,
  nextRunOf,
  normalizedScheduleOf,
  windowOf,
  type Job,
  type JobState,
} from '@tickwork/core';
import { findJob, findServiceById, isUniqueViolation, jobFromRow, lockJob, updateJob, type JobRow } from '@tickwork/db';
import type { FastifyInstance } from 'fastify';
import { principalOf } from '../../../plugins/auth.ts';
import { etagOf, jobDto, runDto } from '../../../serializers.ts';
import { JobParams, jobErrors as errors, nameTaken, startRequestedRun } from './shared.ts';

const notFound = (id: string) => new TickworkError('not_found', `No job ${id}.`);

/**
 * The job's state after a change: a paused job stays paused; otherwise it is active when its new
 * definition fires again (a completed one-shot moved to a later `at`, a higher `maxRuns`) and
 * completed when it will not (an `endAt` moved into the past of its next occurrence).
 */
function stateAfterChange(current: JobState, draft: Job, now: number, runCount: number): JobState {
  if (current === 'paused') return current;
  return nextRunOf({ ...draft, state: 'active' }, now, runCount) === null ? 'completed' : 'active';
}

/**
 * After the new version was registered but the change did not commit (or the old registration
 * could not be removed): take the new one back and put the old one back, best effort; the
 * reconciler repairs whatever this cannot.
 */
async function restore(app: FastifyInstance, old: Job, newVersion: number, runCount: number) {
  await app.fireQueue.unregister(old.id, newVersion).catch(() => {});
  if (old.state === 'active') await app.fireQueue.register(old, Date.now(), runCount).catch(() => {});
}

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
      const service = await findServiceById(app.db, serviceId);
      if (!service) throw new TickworkError('unauthorized', 'The API key is not valid.');
      const now = Date.now();
      let swapped: { old: Job; version: number; runCount: number } | undefined;
      const row = await app.db
        .transaction()
        .execute(async (trx): Promise<JobRow> => {
          const current = await lockJob(trx, serviceId, request.params.id);
          if (!current) throw notFound(request.params.id);
          if (!ifMatchAllows(request.headers['if-match'], current.version)) {
            throw new TickworkError(
              'precondition_failed',
              `The job is at version ${current.version} (ETag ${etagOf(current.version)}); read it again and retry.`,
            );
          }
          const old = jobFromRow(current);
          const spec = buildJobSpec(applyJobPatch(old, request.body), {
            now,
            limits: { minIntervalMs: service.min_interval_ms },
            previous: old,
          });
          // jsonb does not keep key order: compare canonical forms.
          const unchanged = canonicalJson({ ...old, ...spec }) === canonicalJson(old);
          if (unchanged) return current;
          const draft: Job = { ...old, ...spec, version: old.version + 1, updatedAt: now };
          draft.state = stateAfterChange(old.state, draft, now, current.run_count);
          const nextRunAt = nextRunOf(draft, now, current.run_count);
          const updated = await updateJob(trx, old.id, {
            spec,
            state: draft.state,
            version: draft.version,
            nextRunAt: nextRunAt === null ? null : new Date(nextRunAt),
            now: new Date(now),
          });
          // The new version's id first, then the old one's removal: no moment without a schedule.
          await app.fireQueue.register(jobFromRow(updated), now, current.run_count);
          swapped = { old, version: draft.version, runCount: current.run_count };
          await app.fireQueue.unregister(old.id, old.version);
          return updated;
        })
        .catch(async (error: unknown) => {
          if (swapped) await restore(app, swapped.old, swapped.version, swapped.runCount);
          if (isUniqueViolation(error)) throw nameTaken(request.body.name ?? '');
          throw error;
        });
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
      let paused: Job | undefined;
      const row = await app.db.transaction().execute(async (trx): Promise<JobRow> => {
        const current = await lockJob(trx, serviceId, request.params.id);
        if (!current) throw notFound(request.params.id);
        if (current.state === 'paused') return current;
        if (current.state === 'completed')
          throw new TickworkError('conflict', 'The job is completed; there is nothing to pause.');
        paused = jobFromRow(current);
        return updateJob(trx, current.id, {
          state: 'paused',
          version: current.version + 1,
          nextRunAt: null,
          now: new Date(),
        });
      });
      // Postgres already stops delivery (the worker records `paused`), so a pause succeeds even
      // when Redis is away; the old scheduler is then left to the reconciler.
      if (paused) {
        await app.fireQueue.unregister(paused.id, paused.version).catch((error: unknown) => {
          request.log.warn({ err: error, jobId: paused?.id }, 'could not remove the scheduler; the reconciler will');
        });
      }
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
      const now = Date.now();
      let swapped: { old: Job; version: number; runCount: number } | undefined;
      const row = await app.db
        .transaction()
        .execute(async (trx): Promise<JobRow> => {
          const current = await lockJob(trx, serviceId, request.params.id);
          if (!current) throw notFound(request.params.id);
          if (current.state === 'active') return current;
          if (current.state === 'completed')
            throw new TickworkError('conflict', 'The job is completed; change it with PATCH to make it fire again.');
          const old = jobFromRow(current);
          const draft: Job = { ...old, state: 'active', version: old.version + 1, updatedAt: now };
          const nextRunAt = nextRunOf(draft, now, current.run_count);
          const updated = await updateJob(trx, old.id, {
            state: nextRunAt === null ? 'completed' : 'active',
            version: draft.version,
            nextRunAt: nextRunAt === null ? null : new Date(nextRunAt),
            now: new Date(now),
          });
          await app.fireQueue.register(jobFromRow(updated), now, current.run_count);
          swapped = { old, version: draft.version, runCount: current.run_count };
          return updated;
        })
        .catch(async (error: unknown) => {
          if (swapped) await app.fireQueue.unregister(swapped.old.id, swapped.version).catch(() => {});
          throw error;
        });
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
      const job = await findJob(app.db, serviceId, request.params.id);
      if (!job) throw notFound(request.params.id);
      const run = await startRequestedRun(app, {
        jobId: job.id,
        serviceId,
        jobVersion: job.version,
        trigger: 'manual',
      });
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
      const row = await findJob(app.readDb, serviceId, request.params.id);
      if (!row) throw notFound(request.params.id);
      const job = jobFromRow(row);
      const count = request.query.count ?? 10;
      if (job.state !== 'active') return { nextRuns: [] };
      const left = job.maxRuns === null ? count : Math.max(0, Math.min(count, job.maxRuns - row.run_count));
      const times = nextOccurrences(normalizedScheduleOf(job), windowOf(job), Date.now(), left);
      return { nextRuns: times.map((t) => new Date(t).toISOString()) };
    },
  );
};

export default lifecycle;
