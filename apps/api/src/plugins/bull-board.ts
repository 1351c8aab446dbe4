/**
 * Bull Board at /admin/queues for operators, behind the admin token (HTTP Basic with any user
 * name and the token as password, or Bearer). Read-only: changes to schedules belong to the
 * API, which keeps Postgres in step.
 *
 * Its schedulers page reads every scheduler, and for each up to two more jobs: with 100,000
 * schedulers one page load took 12 s, 24 MB of JSON and 660 MB of api memory (measured here).
 * The board's queue therefore lists only the BOARD_SCHEDULER_LIMIT schedulers due soonest; the
 * queue's card still shows the full count, and GET /v1/jobs lists every job.
 */
import fp from 'fastify-plugin';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import { FIRE_QUEUE, TickworkError } from '@tickwork/core';
import { closeQueue } from '@tickwork/queue';
import { isAdminToken } from './auth.ts';
import { sendProblem } from './errors.ts';

const BULL_BOARD_PATH = '/admin/queues';

/** How many schedulers the board's schedulers page lists (the soonest due). */
export const BOARD_SCHEDULER_LIMIT = 100;

/** The fire queue as the board sees it: every other read as BullMQ does it, schedulers bounded. */
class BoardQueue extends Queue {
  override getJobSchedulers(start = 0, end = -1, asc = true) {
    const bounded = end < 0 || end - start >= BOARD_SCHEDULER_LIMIT ? start + BOARD_SCHEDULER_LIMIT - 1 : end;
    return super.getJobSchedulers(start, bounded, asc);
  }
}

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
    const { connection, prefix } = app.fireQueue.queue.opts;
    const boardQueue = new BoardQueue(FIRE_QUEUE, { connection, prefix });
    boardQueue.on('error', () => {});
    app.addHook('onClose', async () => {
      await closeQueue(boardQueue);
    });
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(BULL_BOARD_PATH);
    createBullBoard({
      queues: [new BullMQAdapter(boardQueue, { readOnlyMode: true })],
      serverAdapter,
      options: { uiConfig: { boardTitle: 'Tickwork' } },
    });
    await app.register(async (scope) => {
      scope.addHook('onRequest', async (request, reply) => {
        if (!isAdminToken(tokenOf(request.headers.authorization), options.adminToken)) {
          reply.header('www-authenticate', 'Basic realm="Tickwork operators", charset="UTF-8"');
          // Sent here, not thrown: Bull Board's routes have an error handler of their own,
          // which would turn the 401 into a 500.
          return sendProblem(
            request,
            reply,
            new TickworkError(
              'unauthorized',
              'Operators only: use the admin token (as the Basic password, or Bearer).',
            ),
          );
        }
      });
      await scope.register(serverAdapter.registerPlugin(), { prefix: BULL_BOARD_PATH });
    });
  },
  { name: 'bull-board', dependencies: ['queue'] },
);
