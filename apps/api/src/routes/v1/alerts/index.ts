/** `GET /v1/alerts` and `GET /v1/alerts/{id}`: the alerts of the caller's service. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AlertListQuery, AlertListSchema, AlertSchema, Ref } from '@tickwork/core';
import { principalOf } from '../../../plugins/auth.ts';
import { success } from '../../../plugins/swagger.ts';
import { AlertsService, alertDto } from '../../../services/alerts.ts';
import { afterIdOf } from '../jobs/shared.ts';

const alerts: FastifyPluginAsyncTypebox = async (app) => {
  const service = new AlertsService({ readDb: app.readDb });

  app.get(
    '/alerts',
    {
      schema: {
        tags: ['alerts'],
        operationId: 'listAlerts',
        summary: 'Alerts of your jobs, newest first',
        description:
          'An alert opens when an occurrence of a job with `alertAfterMs` has not succeeded that long after ' +
          'its instant, and resolves when a later occurrence succeeds. Cursor-paged: pass the `nextCursor` ' +
          'of a page as `cursor` to get the next one.',
        querystring: AlertListQuery,
        response: { 200: success(Ref(AlertListSchema), 'A page of alerts.') },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      const { limit = 20, cursor, state, jobId } = request.query;
      const page = await service.list(serviceId, { limit, afterId: afterIdOf(cursor), state, jobId });
      return { items: page.items.map(alertDto), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/alerts/:id',
    {
      schema: {
        tags: ['alerts'],
        operationId: 'getAlert',
        summary: 'Get an alert',
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 200: success(Ref(AlertSchema), 'The alert.') },
      },
    },
    async (request) => {
      const { serviceId } = principalOf(request);
      return alertDto(await service.get(serviceId, request.params.id));
    },
  );
};

export default alerts;
