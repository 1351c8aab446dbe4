/**
 * Bull Board at /admin/queues for operators, behind the admin token (HTTP Basic with any user
 * name and the token as password, or Bearer). Read-only: changes to schedules belong to the
 * API, which keeps Postgres in step.
 *
 * Its schedulers page reads every scheduler, and for each up to two more jobs: with 100,000
 * schedulers one page load took 12 s, 24 MB of JSON and 660 MB of api memory (measured here).
 * The board's queue therefore lists only the BOARD_SCHEDULER_LIMIT schedulers due soonest; the
 * queue's card still shows the full count, and GET /v1/jobs lists every job.
 *
 * The board (`bull-board-ui.ts`: its modules, UI files, views and queues) is loaded on the first
 * request an operator makes, not at start: most api processes never serve it, and it would cost
 * each of them its memory.
 */
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TickworkError } from '@tickwork/core';
import { jobNames } from '@tickwork/db';
import { isAdminToken } from './auth.ts';
import { sendProblem } from './errors.ts';
import type { Board } from './bull-board-ui.ts';

const BULL_BOARD_PATH = '/admin/queues';

/** How many schedulers the board's schedulers page lists (the soonest due). */
export const BOARD_SCHEDULER_LIMIT = 100;

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
    let board: Promise<Board> | undefined;
    const boardOf = () => {
      board ??= import('./bull-board-ui.ts').then(({ loadBoard }) =>
        loadBoard({
          basePath: BULL_BOARD_PATH,
          fireQueue: app.fireQueue,
          connection,
          prefix,
          schedulerLimit: BOARD_SCHEDULER_LIMIT,
          namesOf: (ids) => jobNames(app.readDb, ids),
        }),
      );
      // A board that failed to load is loaded again by the next request.
      board.catch(() => {
        board = undefined;
      });
      return board;
    };
    app.addHook('onClose', async () => {
      await (await board?.catch(() => undefined))?.close();
    });
    const answer = async (request: FastifyRequest, reply: FastifyReply) => {
      const answered = await (await boardOf()).answer({
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: request.body,
      });
      if (answered.kind === 'none') {
        const path = request.url.split('?')[0]!;
        if (answered.allowed.length === 0) {
          return sendProblem(request, reply, new TickworkError('not_found', `No route ${request.method} ${path}.`));
        }
        reply.header('allow', answered.allowed.join(', '));
        return sendProblem(
          request,
          reply,
          new TickworkError(
            'method_not_allowed',
            `${path} does not take ${request.method}; it takes ${answered.allowed.join(', ')}.`,
          ),
        );
      }
      reply.code(answered.status).headers(answered.headers);
      return reply.send(answered.body);
    };
    await app.register(async (scope) => {
      scope.addHook('onRequest', async (request, reply) => {
        if (!isAdminToken(tokenOf(request.headers.authorization), options.adminToken)) {
          reply.header('www-authenticate', 'Basic realm="Tickwork operators", charset="UTF-8"');
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
      for (const url of [BULL_BOARD_PATH, `${BULL_BOARD_PATH}/*`]) {
        scope.route({
          method: ['GET', 'PUT', 'POST', 'PATCH', 'DELETE'],
          url,
          schema: { hide: true },
          handler: answer,
        });
      }
    });
  },
  { name: 'bull-board', dependencies: ['queue', 'db'] },
);
