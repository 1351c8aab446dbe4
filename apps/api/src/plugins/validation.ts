/**
 * Request validation with two Ajv instances: bodies are validated as sent (no coercion, unknown
 * fields refused, not stripped); query strings, params and headers are coerced from text. Both
 * fill in schema defaults. Errors become 400 problem+json with the JSON path of each field.
 */
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifyRequest, FastifySchemaCompiler } from 'fastify';
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
 *
 * The parsed body says first whether there is a value there at all (validation only adds
 * defaults); then the text, already known to be JSON, is scanned for it: the members on the way
 * are skipped by their brackets and strings, nothing else of the body is parsed again.
 */
export function jsonTextAt(request: FastifyRequest, path: string[]): string | undefined {
  const text = request.jsonText;
  if (text === undefined) return undefined;
  let parsed: unknown = request.body;
  for (const key of path) {
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    parsed = (parsed as Record<string, unknown>)[key];
  }
  if (parsed === undefined) return undefined;
  return jsonTextOf(text, path);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/** The index of the first character at or after `i` that is not JSON whitespace. */
function skipSpace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
}

/** The index just past the string whose opening quote is at `i`. */
function skipString(text: string, i: number): number {
  for (i++; ; i++) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE || Number.isNaN(c)) return i + 1;
  }
}

/** The index just past the value that starts at `i` (no whitespace before it). */
function skipValue(text: string, i: number): number {
  const first = text.charCodeAt(i);
  if (first === QUOTE) return skipString(text, i);
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) i = skipString(text, i) - 1;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return i + 1;
    }
    return i;
  }
  // A number, true, false or null: up to the next delimiter.
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || c <= 0x20) return i;
  }
  return i;
}

/** The text of the value at `path` in a JSON text (valid JSON), or undefined when it has none. */
export function jsonTextOf(text: string, path: readonly string[]): string | undefined {
  let start = skipSpace(text, 0);
  for (const key of path) {
    if (text.charCodeAt(start) !== OPEN_BRACE) return undefined;
    let found = -1;
    let i = skipSpace(text, start + 1);
    while (text.charCodeAt(i) === QUOTE) {
      const keyEnd = skipString(text, i);
      const raw = text.slice(i + 1, keyEnd - 1);
      const name = raw.includes('\\') ? (JSON.parse(text.slice(i, keyEnd)) as string) : raw;
      i = skipSpace(text, skipSpace(text, keyEnd) + 1); // past the colon
      if (name === key) found = i;
      i = skipSpace(text, skipValue(text, i));
      if (text.charCodeAt(i) === COMMA) i = skipSpace(text, i + 1);
    }
    if (found < 0) return undefined;
    start = found;
  }
  return text.slice(start, skipValue(text, start));
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
