/** What the job, run and admin routes share: path params, error responses, cursors. */
import { Type } from 'typebox';
import { ProblemSchema, TickworkError } from '@tickwork/core';
import { decodeCursor } from '@tickwork/db';

export const JobParams = Type.Object({ id: Type.String({ format: 'uuid' }) });
export const jobErrors = {
  400: ProblemSchema,
  401: ProblemSchema,
  403: ProblemSchema,
  404: ProblemSchema,
  503: ProblemSchema,
};

export function afterIdOf(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = decodeCursor(cursor);
  if (!id)
    throw new TickworkError('validation_failed', 'cursor is not valid', {
      errors: [{ field: 'querystring.cursor', message: 'is not a cursor this API returned' }],
    });
  return id;
}
