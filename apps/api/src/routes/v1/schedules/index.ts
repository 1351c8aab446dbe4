/** POST /v1/schedules/preview: check a schedule and show its coming times, without saving anything. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  NextRunsSchema,
  ProblemSchema,
  SchedulePreviewBody,
  TickworkError,
  nextOccurrences,
  normalizeSchedule,
  validationError,
  type FieldError,
} from '@tickwork/core';
import { findServiceById } from '@tickwork/db';
import { principalOf } from '../../../plugins/auth.ts';

const schedules: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('preHandler', app.authenticate);

  app.post(
    '/schedules/preview',
    {
      // A POST that only reads: a read-only key may preview.
      config: { scope: 'jobs:read' },
      schema: {
        tags: ['jobs'],
        summary: 'Preview a schedule without saving it',
        description:
          'Validates the schedule as a create would (your service’s minimum interval included) and returns its next `count` (≤ 100, default 10) times inside `[startAt, endAt]`; an interval is phased from `startAt`, else from now. A bad schedule gets 400 with the reason.',
        security: [{ apiKey: [] }],
        body: SchedulePreviewBody,
        response: {
          200: NextRunsSchema,
          400: ProblemSchema,
          401: ProblemSchema,
          403: ProblemSchema,
          503: ProblemSchema,
        },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const service = await findServiceById(app.readDb, serviceId);
      if (!service) throw new TickworkError('unauthorized', 'The API key is not valid.');
      const now = Date.now();
      const { schedule, count = 10 } = request.body;
      const normalized = normalizeSchedule(schedule, { now, minIntervalMs: service.min_interval_ms });
      const errors: FieldError[] = 'errors' in normalized ? [...normalized.errors] : [];
      const startAt = request.body.startAt === undefined ? undefined : Date.parse(request.body.startAt);
      const endAt = request.body.endAt === undefined ? undefined : Date.parse(request.body.endAt);
      if (startAt !== undefined && endAt !== undefined && endAt <= startAt)
        errors.push({ field: 'endAt', message: 'must be after startAt' });
      if (errors.length > 0 || 'errors' in normalized) throw validationError(errors);
      const times = nextOccurrences(normalized.schedule, { anchorMs: startAt ?? now, startAt, endAt }, now, count);
      return { nextRuns: times.map((t) => new Date(t).toISOString()) };
    },
  );
};

export default schedules;
