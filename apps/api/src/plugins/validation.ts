/**
 * Request validation with two Ajv instances: bodies are validated as sent (no coercion, unknown
 * fields refused, not stripped); query strings, params and headers are coerced from text. Both
 * fill in schema defaults. Errors become 400 problem+json with the JSON path of each field.
 */
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import { validationError, type FieldError } from '@tickwork/core';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function makeAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    removeAdditional: false,
    useDefaults: true,
    coerceTypes: coerce ? 'array' : false,
    strict: false,
  });
  addFormats(ajv);
  return ajv;
}

const bodyAjv = makeAjv(false);
const textAjv = makeAjv(true);

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : textAjv;
  return ajv.compile(schema) as ReturnType<FastifySchemaCompiler<object>>;
};

function pathOf(instancePath: string): string {
  return instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}

/** Turns Ajv's errors into `{ field, message }`, one per field, most useful first. */
function fieldErrors(errors: ErrorObject[], part: string): FieldError[] {
  const prefix = part === 'body' ? '' : `${part}.`;
  const out = new Map<string, string>();
  for (const error of errors) {
    const base = pathOf(error.instancePath);
    const join = (name: string) => (base ? `${base}.${name}` : name);
    let field = base;
    let message = error.message ?? 'is not valid';
    if (error.keyword === 'additionalProperties') {
      field = join(String((error.params as { additionalProperty: string }).additionalProperty));
      message = 'is not a known field';
    } else if (error.keyword === 'required') {
      field = join(String((error.params as { missingProperty: string }).missingProperty));
      message = 'is required';
    } else if (error.keyword === 'anyOf' && out.has(prefix + (field || part))) {
      continue;
    }
    const key = prefix + (field || (part === 'body' ? '(body)' : part));
    if (!out.has(key)) out.set(key, message);
  }
  return [...out].map(([field, message]) => ({ field, message }));
}

export function schemaErrorToProblem(errors: ErrorObject[], part: string) {
  return validationError(fieldErrors(errors, part));
}

/**
 * The JSON path of the first string (value or key) Postgres cannot store — a NUL, which neither
 * `text` nor `jsonb` accepts, or an unpaired UTF-16 surrogate (`"\ud800"`), which `jsonb` refuses —
 * or undefined when there is none.
 */
function unstorableStringPath(value: unknown, path = ''): string | undefined {
  const bad = (s: string) => s.includes('\0') || !s.isWellFormed();
  if (typeof value === 'string') return bad(value) ? path || '(body)' : undefined;
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, child] of Object.entries(value)) {
    const childPath = path ? `${path}.${key}` : key;
    if (bad(key)) return childPath;
    const found = unstorableStringPath(child, childPath);
    if (found) return found;
  }
  return undefined;
}

/**
 * Fastify's own JSON parser (prototype poisoning refused), plus a 400 for strings the database
 * cannot store, so they fail as the client's error instead of reaching Postgres as a 500.
 */
export function installJsonParser(server: FastifyInstance): void {
  const parse = server.getDefaultJsonParser('error', 'error');
  server.removeContentTypeParser('application/json');
  server.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    parse(request, body as string, (error, value) => {
      if (error) return done(error, undefined);
      const field = unstorableStringPath(value);
      if (field !== undefined) {
        return done(
          validationError([
            { field, message: 'contains a NUL character or an unpaired UTF-16 surrogate' },
          ]) as unknown as Error,
          undefined,
        );
      }
      done(null, value);
    });
  });
}
