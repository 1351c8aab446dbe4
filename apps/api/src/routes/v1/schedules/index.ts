/** POST /v1/schedules/preview: check a schedule and show its coming times, without saving anything. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { NextRunsSchema, Ref, SchedulePreviewBody, previewSchedule } from '@tickwork/core';
import { principalOf } from '../../../plugins/auth.ts';
import { success } from '../../../plugins/swagger.ts';
import { nextRunsDto } from '../../../serializers.ts';

const schedules: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/schedules/preview',
    {
      // A POST that only reads: a read-only key may preview.
      config: { scope: 'jobs:read' },
      schema: {
        tags: ['jobs'],
        operationId: 'previewSchedule',
        summary: 'Preview a schedule without saving it',
        description:
          'Checks the schedule and window exactly as a create would and returns the next `count` (≤ 100, default 10) ' +
          'times a job created now would fire: after now, inside `[startAt, endAt]`. An interval is phased from ' +
          '`startAt`, else from now; a past `startAt` brings back no past times, for cron and intervals alike. A ' +
          'bad schedule gets 400 with the reason; one that fires more often than your service’s `minIntervalMs` ' +
          'gets 403 `quota_exceeded`, as a create does. With `calendars` (ids of your service’s calendars), the ' +
          'days they exclude are left out; with `includeExcluded: true` as well, `occurrences` lists the next ' +
          '`count` occurrences, excluded ones marked, and `nextRuns` those of them that fire.',
        body: Ref(SchedulePreviewBody, {
          examples: [{ schedule: { cron: '0 9 * * 1-5', timezone: 'Europe/Berlin' } }],
        }),
        response: { 200: success(Ref(NextRunsSchema), 'The coming occurrence times.') },
      },
    },
    async (request) => {
      // The quota as a create reads it: with the key.
      const { minIntervalMs, serviceId } = principalOf(request);
      const exclusion = await app.calendars.exclusionFor(serviceId, request.body.calendars, app.readDb);
      const occurrences = previewSchedule(request.body, { now: Date.now(), limits: { minIntervalMs }, exclusion });
      return nextRunsDto(occurrences, request.body.includeExcluded === true);
    },
  );
};

export default schedules;
