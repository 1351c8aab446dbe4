/** One field at fault in a request, named by its JSON path (`schedule.cron`, `target.url`). */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * Every error the API answers with, by code. Each has its HTTP status, a short title and whether
 * a client may retry the same request unchanged. `docs/errors.md` lists them.
 */
export const ERROR_CODES = {
  validation_failed: { status: 400, title: 'Request is not valid', retryable: false },
  unauthorized: { status: 401, title: 'Missing or invalid credentials', retryable: false },
  forbidden: { status: 403, title: 'Not allowed', retryable: false },
  quota_exceeded: { status: 403, title: 'Quota exceeded', retryable: false },
  not_found: { status: 404, title: 'Not found', retryable: false },
  method_not_allowed: { status: 405, title: 'Method not allowed', retryable: false },
  request_timeout: { status: 408, title: 'Request timeout', retryable: true },
  conflict: { status: 409, title: 'Conflict', retryable: false },
  precondition_failed: { status: 412, title: 'Precondition failed', retryable: false },
  payload_too_large: { status: 413, title: 'Payload too large', retryable: false },
  unsupported_media_type: { status: 415, title: 'Unsupported media type', retryable: false },
  unprocessable: { status: 422, title: 'Unprocessable request', retryable: false },
  rate_limited: { status: 429, title: 'Too many requests', retryable: true },
  headers_too_large: { status: 431, title: 'Request header fields too large', retryable: false },
  internal: { status: 500, title: 'Internal error', retryable: true },
  unavailable: { status: 503, title: 'Service unavailable', retryable: true },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error with a code the API turns into RFC 9457 problem+json. */
export class TickworkError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly errors: FieldError[] | undefined;
  /** For `quota_exceeded`: which quota (`maxJobs`, `minIntervalMs`). */
  readonly quota: string | undefined;

  constructor(code: ErrorCode, detail: string, options?: { errors?: FieldError[]; cause?: unknown; quota?: string }) {
    super(detail, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TickworkError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
    this.errors = options?.errors;
    this.quota = options?.quota;
  }
}

/** A 403 that names the service quota a request would exceed. */
export function quotaExceeded(quota: string, detail: string, errors?: FieldError[]): TickworkError {
  return new TickworkError('quota_exceeded', `Quota ${quota} exceeded. ${detail}`, {
    quota,
    ...(errors ? { errors } : {}),
  });
}

export function validationError(errors: FieldError[]): TickworkError {
  const detail = errors.map((e) => `${e.field}: ${e.message}`).join('; ');
  return new TickworkError('validation_failed', detail, { errors });
}

/** RFC 9457 problem details, as the API writes them. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  errors?: FieldError[];
  quota?: string;
}

export const PROBLEM_TYPE_BASE = 'https://tickwork.dev/problems/';

export function toProblem(error: TickworkError, instance?: string): Problem {
  const problem: Problem = {
    type: `${PROBLEM_TYPE_BASE}${error.code.replaceAll('_', '-')}`,
    title: ERROR_CODES[error.code].title,
    status: error.status,
    detail: error.message,
    code: error.code,
  };
  if (instance) problem.instance = instance;
  if (error.errors) problem.errors = error.errors;
  if (error.quota) problem.quota = error.quota;
  return problem;
}
