/**
 * Named (prepared) statements for the hot statements. node-postgres sends every parameterised
 * query as an unnamed statement, so Postgres parses and plans it on every call: 0.3–0.7 ms of
 * planning on the bench box against ~0.04 ms of execution for a lookup by key, more for the fire
 * path's CTEs. A statement whose text starts with {@link PREPARE} is sent as pg's named query
 * (`{ name, text, values }`, its supported API) instead: each connection parses it once, and
 * after a few executions Postgres keeps its generic plan (`plan_cache_mode` auto) and stops
 * planning it. `driver.ts` hands kysely's statements to pg through {@link statementOf}.
 *
 * Only statements written for it carry the marker: a fixed text (kysely's `sql` template, no
 * text built from input), so the number of statements each connection keeps is small and bounded.
 * `TICKWORK_PG_PREPARE=off` sends them unnamed again (to measure the lever).
 */
import { createHash } from 'node:crypto';
import type { QueryConfig } from 'pg';

/** The prefix that marks a statement text for preparation. */
export const PREPARE = '/*prepare*/';

const names = new Map<string, string>();

function nameOf(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    name = `tw_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
    names.set(text, name);
  }
  return name;
}

/** The pg query for a statement: named when it is marked and `prepare` is on, unnamed otherwise. */
export function statementOf(text: string, values: readonly unknown[], prepare: boolean): QueryConfig {
  const config: QueryConfig = { text, values: values as unknown[] };
  if (prepare && text.startsWith(PREPARE)) config.name = nameOf(text);
  return config;
}
