/**
 * Bull Board at /admin/queues for operators, behind the admin token (HTTP Basic with any user
 * name and the token as password, or Bearer). Read-only: changes to schedules belong to the
 * API, which keeps Postgres in step.
 */
import fp from 'fastify-plugin';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { TickworkError } from '@tickwork/core';
import { isAdminToken } from './auth.ts';
import { sendProblem } from './errors.ts';

export const BULL_BOARD_PATH = '/admin/queues';

function tokenOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+(\S+)$/i.exec(header);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : decoded.slice(colon + 1);
}

export default fp<{ adminToken: string | undefined }>(
  async (app, options) => {
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(BULL_BOARD_PATH);
    createBullBoard({
      queues: [new BullMQAdapter(app.fireQueue.queue, { readOnlyMode: true })],
      serverAdapter,
      options: { uiConfig: { boardTitle: 'Tickwork' } },
    });
    await app.register(
      async (scope) => {
        scope.addHook('onRequest', async (request, reply) => {
          if (!isAdminToken(tokenOf(request.headers.authorization), options.adminToken)) {
            reply.header('www-authenticate', 'Basic realm="Tickwork operators", charset="UTF-8"');
            // Sent here, not thrown: Bull Board's routes have an error handler of their own,
            // which would turn the 401 into a 500.
            return sendProblem(
              request,
              reply,
              new TickworkError('unauthorized', 'Operators only: use the admin token (as the Basic password, or Bearer).'),
            );
          }
        });
        await scope.register(serverAdapter.registerPlugin(), { prefix: BULL_BOARD_PATH });
      },
    );
  },
  { name: 'bull-board', dependencies: ['queue'] },
);
