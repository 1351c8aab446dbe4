/** What the job and run routes share: path params, error responses, cursors, name conflicts. */
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
  if (!id) throw new TickworkError('validation_failed', 'cursor is not valid', { errors: [{ field: 'querystring.cursor', message: 'is not a cursor this API returned' }] });
  return id;
}

export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: string }).code === '23505';
}

export function nameTaken(name: string): TickworkError {
  return new TickworkError('conflict', `A job named "${name}" already exists in this service.`, {
    errors: [{ field: 'name', message: 'is already taken' }],
  });
}

