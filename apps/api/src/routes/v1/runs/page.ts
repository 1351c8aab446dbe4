/** A page of runs from rows serialized once per version (`page-cache.ts`): what both run lists send. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Ref, RunSchema } from '@tickwork/core';
import type { RunListFilter, RunOwner } from '@tickwork/db';
import { pageBody, type SerializedRows } from '../../../page-cache.ts';
import { runDto } from '../../../serializers.ts';

const RUN_ITEM: Record<string, unknown> = { ...Ref(RunSchema) };

export async function runsPage(
  app: FastifyInstance,
  reply: FastifyReply,
  rows: SerializedRows,
  owner: RunOwner,
  filter: RunListFilter,
): Promise<never> {
  const toJson = reply.compileSerializationSchema(RUN_ITEM);
  const body = await pageBody(await app.jobs.runStamps(owner, filter), rows, {
    load: (ids) => app.jobs.stampedRuns(owner, ids),
    serialize: (row) => toJson(runDto(row)),
  });
  // The route's schema is the contract; this string is its items' serializer's output, joined.
  return reply.type('application/json; charset=utf-8').send(body) as never;
}
