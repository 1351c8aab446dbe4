/** /v1/calendars: a service's exclusion calendars (create, list, get, patch, delete). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  CalendarListSchema,
  CalendarSchema,
  CreateCalendarBody,
  PageQuery,
  PatchCalendarBody,
  ProblemSchema,
  Ref,
} from '@tickwork/core';
import { principalOf } from '../../../plugins/auth.ts';
import { success } from '../../../plugins/swagger.ts';
import { calendarDto } from '../../../serializers.ts';
import { afterIdOf } from '../jobs/shared.ts';

const CalendarParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

const CREATE_CALENDAR_EXAMPLE = {
  name: 'berlin-holidays',
  timezone: 'Europe/Berlin',
  dates: ['2026-12-25', '2026-12-26'],
  ranges: [{ from: '2026-12-31', to: '2027-01-01' }],
};

const calendars: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/calendars',
    {
      schema: {
        tags: ['calendars'],
        operationId: 'createCalendar',
        summary: 'Create an exclusion calendar',
        description:
          'Whole local days in the calendar’s `timezone` (default `UTC`): single `dates` and inclusive `ranges`. A ' +
          'job that lists the calendar in `calendars` does not fire on those days: each occurrence that falls on ' +
          'one is recorded `skipped` (`excluded`).',
        body: Ref(CreateCalendarBody, { examples: [CREATE_CALENDAR_EXAMPLE] }),
        response: {
          201: success(Ref(CalendarSchema), 'The calendar, created.', 'Location'),
          409: Ref(ProblemSchema),
        },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      const row = await app.calendars.create(serviceId, request.body);
      reply.code(201).header('location', `/v1/calendars/${row.id}`);
      return calendarDto(row);
    },
  );

  app.get(
    '/calendars',
    {
      schema: {
        tags: ['calendars'],
        operationId: 'listCalendars',
        summary: 'List calendars, newest first',
        querystring: Type.Object({ ...PageQuery }, { additionalProperties: false }),
        response: { 200: success(Ref(CalendarListSchema), 'A page of calendars.') },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const { limit = 20, cursor } = request.query;
      const page = await app.calendars.list(serviceId, { limit, afterId: afterIdOf(cursor) });
      return { items: page.items.map(calendarDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/calendars/:id',
    {
      schema: {
        tags: ['calendars'],
        operationId: 'getCalendar',
        summary: 'Get a calendar',
        params: CalendarParams,
        response: { 200: success(Ref(CalendarSchema), 'The calendar.') },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      return calendarDto(await app.calendars.get(serviceId, request.params.id));
    },
  );

  app.patch(
    '/calendars/:id',
    {
      schema: {
        tags: ['calendars'],
        operationId: 'updateCalendar',
        summary: 'Update a calendar',
        description:
          'Fields sent replace the stored ones; `dates` and `ranges` are replaced whole. Every job that lists the ' +
          'calendar honours the change from its next occurrence on, with no new version; the `nextRunAt` of each ' +
          'active one is computed again before the answer.',
        params: CalendarParams,
        body: Ref(PatchCalendarBody),
        response: { 200: success(Ref(CalendarSchema), 'The calendar, changed.'), 409: Ref(ProblemSchema) },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      return calendarDto(await app.calendars.patch(serviceId, request.params.id, request.body));
    },
  );

  app.delete(
    '/calendars/:id',
    {
      schema: {
        tags: ['calendars'],
        operationId: 'deleteCalendar',
        summary: 'Delete a calendar no job lists',
        description:
          'A calendar that a job lists cannot be deleted (409, naming some of those jobs): remove it from their ' +
          '`calendars` first.',
        params: CalendarParams,
        response: { 204: Type.Null({ description: 'Deleted.' }), 409: Ref(ProblemSchema) },
      },
    },
    async (request, reply) => {
      const { serviceId } = principalOf(request);
      await app.calendars.delete(serviceId, request.params.id);
      return reply.code(204).send(null);
    },
  );
};

export default calendars;
