/** What the job, run and admin routes share: path params, cursors. */
import { Type } from 'typebox';
import type { FastifyRequest } from 'fastify';
import { TickworkError, type Actor } from '@tickwork/core';
import { decodeCursor } from '@tickwork/db';
import { principalOf } from '../../../plugins/auth.ts';

export const JobParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

export function afterIdOf(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = decodeCursor(cursor);
  if (!id)
    throw new TickworkError('validation_failed', 'cursor is not valid', {
      errors: [{ field: 'querystring.cursor', message: 'is not a cursor this API returned' }],
    });
  return id;
}

/** Who a service route's change is made by, for the job's version history: the request's API key. */
export function actorOf(request: FastifyRequest): Actor {
  return { kind: 'key', id: principalOf(request).keyId };
}
