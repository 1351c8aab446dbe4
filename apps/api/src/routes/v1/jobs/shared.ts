/** What the job, run and admin routes share: path params, cursors. */
import { Type } from 'typebox';
import { TickworkError } from '@tickwork/core';
import { decodeCursor } from '@tickwork/db';

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
