/**
 * The OpenAPI document at /openapi.json (and Swagger UI at /docs), generated from the routes'
 * schemas. What every route shares is added here from rules rather than written on each route,
 * so it cannot drift: the security scheme (from the same rule the auth plugin applies), and the
 * problem+json responses each operation can answer, as references to one set in
 * `components.responses`. A route declares only its own: its success response and headers, and
 * the errors particular to it (409, 412, 422). `apps/api/test/openapi-contract.test.ts` checks the
 * result against real answers.
 */
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Type, type Static, type TSchema } from 'typebox';
import { ERROR_CODES, PROBLEM_TYPE_BASE } from '@tickwork/core';
import { credentialOf } from './auth.ts';
import type { RouteEntry } from './errors.ts';

type Json = Record<string, unknown>;

/** Headers an answer may carry. The first four are `components.headers`, referenced where they are sent. */
export const HEADERS = {
  RequestId: {
    name: 'x-request-id',
    required: true,
    description: 'The request id: yours when you sent a sane `x-request-id`, else a new UUID. Our logs carry it.',
    schema: { type: 'string' },
  },
  Location: { name: 'location', required: true, description: 'Where the new resource is.', schema: { type: 'string' } },
  ETag: {
    name: 'etag',
    required: true,
    description: 'The job version as a weak ETag (`W/"<version>"`); send it as `If-Match` to change only that version.',
    schema: { type: 'string', pattern: '^W/"[0-9]+"$' },
  },
  IdempotentReplayed: {
    name: 'idempotent-replayed',
    required: false,
    description: '`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`.',
    schema: { type: 'string', enum: ['true'] },
  },
  RetryAfter: {
    name: 'retry-after',
    required: false,
    description: 'Seconds to wait before trying again.',
    schema: { type: 'string', pattern: '^[0-9]+$' },
  },
  RateLimitLimit: {
    name: 'ratelimit-limit',
    required: false,
    description: 'Requests this API key may make a minute.',
    schema: { type: 'string', pattern: '^[0-9]+$' },
  },
  RateLimitRemaining: {
    name: 'ratelimit-remaining',
    required: false,
    description: 'Requests left in the current minute.',
    schema: { type: 'string', pattern: '^[0-9]+$' },
  },
  RateLimitReset: {
    name: 'ratelimit-reset',
    required: false,
    description: 'Seconds until the allowance is full again.',
    schema: { type: 'string', pattern: '^[0-9]+$' },
  },
  WwwAuthenticate: {
    name: 'www-authenticate',
    required: false,
    description: 'How to authenticate (`Bearer`).',
    schema: { type: 'string' },
  },
  Allow: { name: 'allow', required: false, description: 'The methods this path takes.', schema: { type: 'string' } },
} as const;
type HeaderKey = keyof typeof HEADERS;

/** The headers referenced from `components.headers`; the rest are written out in the responses that send them. */
const SHARED_HEADERS: HeaderKey[] = ['RequestId', 'Location', 'ETag', 'IdempotentReplayed'];

const headerRef = (key: HeaderKey) => ({ $ref: `#/components/headers/${key}` });
const headerObject = (key: HeaderKey, required: boolean = HEADERS[key].required) => ({
  description: HEADERS[key].description,
  required,
  schema: HEADERS[key].schema,
});

/**
 * A success response: its schema, what it means, and the headers it is sent with (documented from
 * `HEADERS`, by name). The serializer reads only the schema.
 */
export function success<T extends TSchema>(
  schema: T,
  description: string,
  ...keys: Array<'Location' | 'ETag' | 'IdempotentReplayed'>
) {
  return Type.Unsafe<Static<T>>({
    ...schema,
    description,
    ...(keys.length === 0
      ? {}
      : { headers: Object.fromEntries(keys.map((key) => [HEADERS[key].name, { type: 'string' }])) }),
  });
}

/**
 * The problem+json answers, by status: the name in `components.responses`, what it means, and
 * the headers that come with it (required ones marked).
 */
export const PROBLEM_RESPONSES: Record<
  number,
  { name: string; description: string; headers?: `${HeaderKey}${'' | '!'}`[] }
> = {
  400: {
    name: 'BadRequest',
    description: 'The request is not valid (a field, a parameter, malformed JSON); `errors` names each field at fault.',
  },
  401: {
    name: 'Unauthorized',
    description: 'No credentials, or not valid ones (unknown, revoked, expired, disabled).',
    headers: ['WwwAuthenticate!'],
  },
  403: {
    name: 'Forbidden',
    description:
      'The credentials do not allow this (a scope the key lacks, the wrong kind of token), or a quota would be ' +
      'exceeded (`quota_exceeded`, naming it in `quota`).',
  },
  404: { name: 'NotFound', description: 'No such resource in your service.' },
  405: {
    name: 'MethodNotAllowed',
    description:
      'The path exists but does not take this method. No operation answers it: it is the answer to a method the ' +
      'document does not list for a path.',
    headers: ['Allow!'],
  },
  408: { name: 'RequestTimeout', description: 'The request took too long to arrive (30 s).' },
  409: {
    name: 'Conflict',
    description: 'The request conflicts with the current state (a name taken, a job completed, a repeat in flight).',
    headers: ['RetryAfter'],
  },
  412: { name: 'PreconditionFailed', description: '`If-Match` names another version; read the job again.' },
  413: { name: 'PayloadTooLarge', description: 'The body is larger than 64 KiB.' },
  415: {
    name: 'UnsupportedMediaType',
    description: 'The body is not JSON (send `content-type: application/json`).',
  },
  422: {
    name: 'UnprocessableContent',
    description: 'This `Idempotency-Key` was used with another body.',
  },
  429: {
    name: 'TooManyRequests',
    description: 'This API key made more requests this minute than it may.',
    headers: ['RetryAfter!', 'RateLimitLimit!', 'RateLimitRemaining!', 'RateLimitReset!'],
  },
  431: { name: 'RequestHeaderFieldsTooLarge', description: 'The request headers are larger than 16 KiB.' },
  500: {
    name: 'InternalServerError',
    description: 'Something failed on our side; the request id finds it in our logs. Safe to retry.',
  },
  503: {
    name: 'ServiceUnavailable',
    description: 'Postgres or Redis is not answering; nothing was changed. Retry after `Retry-After`.',
    headers: ['RetryAfter!'],
  },
};

/** The named response of a status, for a `$ref`. */
const problemRef = (status: number) => ({ $ref: `#/components/responses/${PROBLEM_RESPONSES[status]!.name}` });

function problemResponse(status: number): Json {
  const { description, headers = [] } = PROBLEM_RESPONSES[status]!;
  return {
    description,
    headers: {
      [HEADERS.RequestId.name]: headerRef('RequestId'),
      ...Object.fromEntries(
        headers.map((entry) => {
          const key = entry.replace('!', '') as HeaderKey;
          return [HEADERS[key].name, headerObject(key, entry.endsWith('!'))];
        }),
      ),
    },
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
  };
}

/** The problem statuses an operation can answer, from what it is: where it lives, what it takes. */
export function problemStatusesOf(path: string, method: string, operation: Json): number[] {
  const statuses = new Set([408, 431, 500]);
  const credential = credentialOf(path);
  if (credential !== undefined) {
    for (const status of [401, 403, 503]) statuses.add(status);
    if (credential === 'apiKey') statuses.add(429);
  }
  const parameters = (operation.parameters as Array<{ in: string }> | undefined) ?? [];
  const takesBody = method === 'post' || method === 'put' || method === 'patch';
  if (parameters.length > 0 || takesBody) statuses.add(400);
  if (parameters.some((p) => p.in === 'path')) statuses.add(404);
  if (takesBody) {
    statuses.add(413);
    statuses.add(415);
  }
  return [...statuses];
}

const isProblem = (response: Json) => {
  const content = response.content as Record<string, { schema?: { $ref?: string } }> | undefined;
  return Object.values(content ?? {}).some((media) => media.schema?.$ref === '#/components/schemas/Problem');
};

/** A route's own headers (`withHeaders`), as references to the shared ones. */
function sharedHeaders(response: Json): Json {
  const names = Object.keys((response.headers as Json | undefined) ?? {});
  return Object.fromEntries(
    names.map((name) => {
      const key = SHARED_HEADERS.find((k) => HEADERS[k].name === name);
      if (key === undefined) throw new Error(`No shared header ${name}: add it to HEADERS`);
      return [name, headerRef(key)];
    }),
  );
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/**
 * The request body examples a route gives (`Ref(schema, { examples })`), for Swagger UI's "Try it
 * out": the reference that names the body's schema cannot carry them into the document.
 */
function addBodyExamples(operation: Json, route: RouteEntry | undefined) {
  const examples = (route?.schema?.body as { examples?: unknown[] } | undefined)?.examples;
  const content = (operation.requestBody as { content?: Record<string, Json> } | undefined)?.content;
  if (!examples?.[0] || !content) return;
  for (const media of Object.values(content)) media.example = examples[0];
}

/** Applies the shared rules to the generated document; `routeOf` finds the route of an operation. */
function completeDocument(document: Json, routeOf: (method: string, path: string) => RouteEntry | undefined): Json {
  const paths = document.paths as Record<string, Record<string, Json>>;
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue;
      addBodyExamples(operation, routeOf(method, path));
      // Fastify reads a repeated query parameter as an array: `label=a:1&label=b:2`.
      for (const parameter of (operation.parameters as Json[] | undefined) ?? []) {
        if (parameter.in === 'query' && (parameter.schema as Json | undefined)?.type === 'array') {
          Object.assign(parameter, { style: 'form', explode: true });
        }
      }
      const credential = credentialOf(path);
      operation.security = credential === undefined ? [] : [{ [credential]: [] }];
      const responses = operation.responses as Record<string, Json>;
      for (const [status, response] of Object.entries(responses)) {
        if (isProblem(response)) responses[status] = problemRef(Number(status));
        else response.headers = { [HEADERS.RequestId.name]: headerRef('RequestId'), ...sharedHeaders(response) };
      }
      for (const status of problemStatusesOf(path, method, operation)) {
        responses[status] ??= problemRef(status);
      }
      operation.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)));
    }
  }
  const components = document.components as Json;
  components.responses = Object.fromEntries(
    Object.keys(PROBLEM_RESPONSES).map((status) => [
      PROBLEM_RESPONSES[Number(status)]!.name,
      problemResponse(Number(status)),
    ]),
  );
  components.headers = Object.fromEntries(SHARED_HEADERS.map((key) => [key, headerObject(key)]));
  return document;
}

export default fp(
  async (app) => {
    const routeOf = (method: string, path: string) => {
      const url = path.replace(/\{(\w+)\}/g, ':$1');
      return app.routeTable.find((route) => route.method === method.toUpperCase() && route.url === url);
    };
    await app.register(swagger, {
      // Schemas with an `$id` become components under that name.
      refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Tickwork',
          version: '0.1.0',
          description: `Schedule HTTP callbacks: cron with a time zone, fixed intervals, or once. Every occurrence is recorded as a run; callbacks carry a stable \`webhook-id\` across retries. Every error is RFC 9457 \`application/problem+json\` (\`type\` under ${PROBLEM_TYPE_BASE}, a stable \`code\`: ${Object.keys(ERROR_CODES).length} of them).`,
          license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
        },
        servers: [{ url: '/', description: 'The api that serves this document' }],
        components: {
          securitySchemes: {
            apiKey: { type: 'http', scheme: 'bearer', description: 'A service API key (`tw_…`).' },
            adminToken: { type: 'http', scheme: 'bearer', description: 'The ADMIN_TOKEN.' },
          },
        },
        tags: [
          { name: 'jobs', description: 'Scheduled HTTP callbacks' },
          { name: 'runs', description: 'One record per occurrence' },
          { name: 'calendars', description: 'Exclusion calendars: days a job does not fire' },
          { name: 'alerts', description: "When a job didn't run" },
          { name: 'admin', description: 'Services and keys (admin token)' },
          { name: 'health', description: 'Probes and metrics' },
        ],
      },
      transformObject: (document) =>
        'openapiObject' in document
          ? (completeDocument(document.openapiObject as Json, routeOf) as typeof document.openapiObject)
          : document.swaggerObject,
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'swagger', dependencies: ['errors'] },
);
