/**
 * The client: one method per operation of the API, named by its operationId and typed from the
 * served OpenAPI document (openapi-fetch over the types openapi-typescript generated). It sends
 * the API key, retries 429 and 503 honouring `Retry-After`, sends an `Idempotency-Key` on every
 * create unless the caller gives one (the same key on every retry of that call), throws a
 * {@link TickworkApiError} for any other answer than a success, and iterates pages with
 * `for await`.
 */
import { randomUUID } from 'node:crypto';
import createClient, { type Client, type MaybeOptionalInit, type Middleware } from 'openapi-fetch';
import { OPERATIONS, type OperationId } from './generated/operations.ts';
import type { components, operations, paths } from './generated/schema.ts';

export type Schemas = components['schemas'];
export type Problem = Schemas['Problem'];

type Entry<K extends OperationId> = (typeof OPERATIONS)[K];
type Path<K extends OperationId> = Entry<K>['path'] & keyof paths;
type Method<K extends OperationId> = Entry<K>['method'] & keyof paths[Path<K>];

/** What a method takes: `params` (`path`, `query`, `header`), `body`, and openapi-fetch's other options. */
export type InitOf<K extends OperationId> = MaybeOptionalInit<paths[Path<K>], Method<K>>;

type Responses<K extends OperationId> = operations[K]['responses'];
type SuccessStatus = 200 | 201 | 202 | 204;
/** What a method resolves to: the body of its success answer (undefined for a 204). */
export type DataOf<K extends OperationId> = {
  [S in keyof Responses<K>]: S extends SuccessStatus
    ? Responses<K>[S] extends { content: { 'application/json': infer T } }
      ? T
      : Responses<K>[S] extends { content: { [type: string]: infer T } }
        ? T
        : undefined
    : never;
}[keyof Responses<K>];

type Args<K extends OperationId> = undefined extends InitOf<K> ? [init?: InitOf<K>] : [init: InitOf<K>];

/** The operations that answer a page (`{ items, nextCursor }`) and take a `cursor`. */
export type PaginatedId = { [K in OperationId]: Entry<K>['paginated'] extends true ? K : never }[OperationId];
export type ItemOf<K extends PaginatedId> = DataOf<K> extends { items: (infer T)[] } ? T : never;

/** An answer other than a success: its status, its RFC 9457 problem and the request id to quote. */
export class TickworkApiError extends Error {
  readonly status: number;
  readonly problem: Problem | undefined;
  readonly requestId: string | undefined;
  constructor(operation: string, status: number, problem: Problem | undefined, requestId: string | undefined) {
    const detail = problem?.detail ?? problem?.title ?? '';
    super(`${operation} answered ${status}${detail ? `: ${detail}` : ''}`);
    this.name = 'TickworkApiError';
    this.status = status;
    this.problem = problem;
    this.requestId = requestId;
  }
}

export interface RetryOptions {
  /** Attempts in all, the first included. @defaultValue 4 */
  maxAttempts?: number;
  /** The first wait without a `Retry-After`; it doubles each attempt. @defaultValue 500 */
  baseDelayMs?: number;
  /** The longest wait; an answer that asks for longer is returned as it is (thrown). @defaultValue 30000 */
  maxDelayMs?: number;
}

export interface TickworkClientOptions {
  /** Where the api is, e.g. `https://tickwork.internal` (TICKWORK_URL). */
  baseUrl: string;
  /** The service's API key (`tw_…`); the admin token for `/v1/admin` operations. */
  apiKey: string;
  retry?: RetryOptions;
  /** @defaultValue globalThis.fetch */
  fetch?: (request: Request) => Promise<Response>;
}

export type TickworkClient = { [K in OperationId]: (...init: Args<K>) => Promise<DataOf<K>> } & {
  /** Every item of every page, fetched a page at a time as the loop asks: `for await (const job of …)`. */
  pages<K extends PaginatedId>(operation: K, ...init: Args<K>): AsyncGenerator<ItemOf<K>, void, undefined>;
  /** The openapi-fetch client underneath (`raw.GET('/v1/jobs/{id}', …)`), with the same retries and keys. */
  raw: Client<paths>;
};

/** A `Retry-After` (seconds or an HTTP date) in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** A fetch that sends again, after the wait the answer asks for, what was answered 429 or 503. */
function retryingFetch(inner: (request: Request) => Promise<Response>, options: RetryOptions = {}) {
  const maxAttempts = options.maxAttempts ?? 4;
  const baseDelayMs = options.baseDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  return async (request: Request): Promise<Response> => {
    for (let attempt = 1; ; attempt++) {
      // Each attempt sends a copy: a body can be read once.
      const response = await inner(attempt < maxAttempts ? request.clone() : request);
      if ((response.status !== 429 && response.status !== 503) || attempt >= maxAttempts) return response;
      const asked = retryAfterMs(response.headers.get('retry-after'));
      const wait = asked ?? Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
      if (wait > maxDelayMs) return response;
      await response.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };
}

const CREATES = new Set(
  Object.values(OPERATIONS)
    .filter((op) => op.create)
    .map((op) => `${op.method.toUpperCase()} ${op.path}`),
);

/** An `Idempotency-Key` on every create that has none: set once, before the retries, so they share it. */
const idempotencyKeys: Middleware = {
  onRequest({ request, schemaPath }) {
    if (!CREATES.has(`${request.method} ${schemaPath}`) || request.headers.has('idempotency-key')) return undefined;
    request.headers.set('idempotency-key', randomUUID());
    return request;
  },
};

export function createTickworkClient(options: TickworkClientOptions): TickworkClient {
  const raw = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    headers: { authorization: `Bearer ${options.apiKey}` },
    fetch: retryingFetch(options.fetch ?? ((request) => globalThis.fetch(request)), options.retry),
  });
  raw.use(idempotencyKeys);

  const call = async (id: OperationId, init: unknown): Promise<unknown> => {
    const { method, path, parseAs } = OPERATIONS[id];
    // biome-ignore lint/suspicious/noExplicitAny: the table's entry types the call; TypeScript cannot follow it here.
    const result = await (raw.request as any)(method, path, { parseAs, ...(init as object) });
    const response = result.response as Response;
    if (!response.ok) {
      const problem = (result.error ?? undefined) as Problem | undefined;
      throw new TickworkApiError(id, response.status, problem, response.headers.get('x-request-id') ?? undefined);
    }
    return result.data;
  };

  const client: Record<string, unknown> = { raw };
  for (const id of Object.keys(OPERATIONS) as OperationId[]) client[id] = (init?: unknown) => call(id, init);
  client.pages = async function* pages(id: PaginatedId, init?: { params?: { query?: Record<string, unknown> } }) {
    let cursor: string | null | undefined;
    do {
      const query = { ...init?.params?.query, ...(cursor ? { cursor } : {}) };
      const page = (await call(id, { ...init, params: { ...init?.params, query } })) as {
        items: unknown[];
        nextCursor: string | null;
      };
      yield* page.items;
      cursor = page.nextCursor;
    } while (cursor);
  };
  return client as TickworkClient;
}
