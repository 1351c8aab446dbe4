/** What the job and run routes share: path params, error responses, cursors, name conflicts. */
import { Type } from 'typebox';
import type { FastifyInstance } from 'fastify';
import { ProblemSchema, TickworkError, manualJobIdOf, replayJobIdOf, uuidv7 } from '@tickwork/core';
import { decodeCursor, deleteRun, insertRequestedRun, isForeignKeyViolation, type RunRow } from '@tickwork/db';

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

export function nameTaken(name: string): TickworkError {
  return new TickworkError('conflict', `A job named "${name}" already exists in this service.`, {
    errors: [{ field: 'name', message: 'is already taken' }],
  });
}

/**
 * Starts a run the api records itself (run now, replay): the run is committed first and only then
 * handed to BullMQ, because a worker may take the BullMQ job the instant it exists and must find
 * the run. If Redis refuses, the run is taken back and the request answers 503.
 */
export async function startRequestedRun(
  app: FastifyInstance,
  run: { jobId: string; serviceId: string; jobVersion: number; trigger: 'manual' | 'replay'; replayOf?: string },
): Promise<RunRow> {
  const recorded = await insertRequestedRun(app.db, { ...run, id: uuidv7(), now: Date.now() }).catch(
    (error: unknown) => {
      // The job was deleted between the lookup and this insert (found by the chaos model test,
      // a trigger racing a delete): its run has nothing to belong to.
      if (isForeignKeyViolation(error)) throw new TickworkError('not_found', `No job ${run.jobId}.`);
      throw error;
    },
  );
  const bullJobId =
    run.trigger === 'manual' ? manualJobIdOf(run.jobId, recorded.id) : replayJobIdOf(run.jobId, recorded.id);
  try {
    await app.fireQueue.enqueueRun({ jobId: run.jobId, version: run.jobVersion, runId: recorded.id }, bullJobId);
  } catch (error) {
    await deleteRun(app.db, recorded.id).catch(() => {});
    throw error;
  }
  return recorded;
}
