/**
 * Request validation with two Ajv instances: bodies are validated as sent (no coercion, unknown
 * fields refused, not stripped); query strings, params and headers are coerced from text. Both
 * fill in schema defaults. Errors become 400 problem+json with the JSON path of each field.
 */
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import { parseTree, type Node } from 'jsonc-parser';
import {
  ADMIN_NAMED_SCHEMAS,
  CALENDAR_NAMED_SCHEMAS,
  ALERT_NAMED_SCHEMAS,
  HISTORY_NAMED_SCHEMAS,
  NAMED_SCHEMAS,
  validationError,
  type FieldError,
} from '@tickwork/core';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** The named schemas route schemas refer to (`Ref`): Fastify's serializer and both validators resolve them here. */
export const SHARED_SCHEMAS = [
  ...NAMED_SCHEMAS,
  ...ADMIN_NAMED_SCHEMAS,
  ...CALENDAR_NAMED_SCHEMAS,
  ...ALERT_NAMED_SCHEMAS,
  ...HISTORY_NAMED_SCHEMAS,
];

function makeAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    removeAdditional: false,
    useDefaults: true,
    coerceTypes: coerce ? 'array' : false,
    strict: false,
    // The failing schema on each error: a `oneOf` reads the forms it offers from it.
    verbose: true,
  });
  addFormats(ajv);
  for (const schema of SHARED_SCHEMAS) ajv.addSchema(schema);
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

/**
 * A failed `oneOf` reports the errors of every form it offers. When the value names exactly one
 * form (the key that form requires is present, `cron` or `every`…), only that form's errors are
 * worth reading; otherwise (none, or several) the one error is that it must have exactly one of
 * those keys.
 */
function collapseOneOf(errors: ErrorObject[]): ErrorObject[] {
  let out = errors;
  for (const oneOf of errors.filter((e) => e.keyword === 'oneOf')) {
    const forms = oneOf.schema as Array<{ $ref?: string; required?: string[] }>;
    const keys = forms.map(
      (form) => ((form.$ref ? bodyAjv.getSchema(form.$ref)?.schema : form) as { required?: string[] })?.required?.[0],
    );
    if (keys.some((key) => key === undefined)) continue;
    const data = oneOf.data;
    const present = keys.filter((key) => typeof data === 'object' && data !== null && (key as string) in data);
    const chosen = present.length === 1 ? keys.indexOf(present[0]) : -1;
    const at = oneOf.instancePath;
    const formOf = (e: ErrorObject) =>
      e.instancePath === at || e.instancePath.startsWith(`${at}/`)
        ? forms.findIndex((form, i) =>
            form.$ref
              ? e.schemaPath.startsWith(`${form.$ref}/`) || e.schemaPath.startsWith(`${form.$ref}#`)
              : e.schemaPath.startsWith(`${oneOf.schemaPath}/${i}/`),
          )
        : -1;
    out = out.flatMap((e) => {
      if (e === oneOf) return chosen === -1 ? [{ ...e, message: `must have exactly one of ${keys.join(', ')}` }] : [];
      const form = formOf(e);
      return form === -1 || form === chosen ? [e] : [];
    });
  }
  return out;
}

/** Turns Ajv's errors into `{ field, message }`, one per field, most useful first. */
function fieldErrors(errors: ErrorObject[], part: string): FieldError[] {
  const prefix = part === 'body' ? '' : `${part}.`;
  const out = new Map<string, string>();
  for (const error of collapseOneOf(errors)) {
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

declare module 'fastify' {
  interface FastifyRequest {
    /** The JSON body's text as it arrived, for what must be kept byte for byte (`target.body`). */
    jsonText: string | undefined;
  }
}

/**
 * The JSON text of the value at `path` in the request's body, exactly as the client wrote it, or
 * undefined when the body has none there. A repeated key counts as JSON.parse counts it: the last.
 */
export function jsonTextAt(request: FastifyRequest, path: string[]): string | undefined {
  const text = request.jsonText;
  if (text === undefined) return undefined;
  let node: Node | undefined = parseTree(text);
  for (const key of path) {
    if (node?.type !== 'object') return undefined;
    const property: Node | undefined = node.children?.findLast((p) => p.children?.[0]?.value === key);
    node = property?.children?.[1];
  }
  return node === undefined ? undefined : text.slice(node.offset, node.offset + node.length);
}

/** RFC 7396's media type, which PATCH takes beside `application/json`. */
export const MERGE_PATCH = 'application/merge-patch+json';

/**
 * Fastify's own JSON parser (prototype poisoning refused) for `mediaType`, plus a 400 for strings
 * the database cannot store, so they fail as the client's error instead of reaching Postgres as a 500.
 */
export function installJsonParser(server: FastifyInstance, mediaType = 'application/json'): void {
  const parse = server.getDefaultJsonParser('error', 'error');
  if (!server.hasRequestDecorator('jsonText')) server.decorateRequest('jsonText', undefined);
  if (server.hasContentTypeParser(mediaType)) server.removeContentTypeParser(mediaType);
  server.addContentTypeParser(mediaType, { parseAs: 'string' }, (request, body, done) => {
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
      request.jsonText = body as string;
      done(null, value);
    });
  });
}
