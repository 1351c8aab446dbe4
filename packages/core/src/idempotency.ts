/**
 * `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): the key a client sends, and
 * the fingerprint that tells "the same request again" from "another request under the same key".
 */
import { createHash } from 'node:crypto';
import { validationError } from './errors.ts';

/** How long a key and its stored response are kept. */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;
/**
 * A key whose first request has not answered after this long is taken to be abandoned (its
 * process died), so a retry may run instead of meeting 409 for a day. It is longer than any
 * request may take (the api's request timeout is 30 s).
 */
export const IDEMPOTENCY_STALE_MS = 60_000;

/** The key from the header: the draft spells it as a quoted sf-string; a bare token is taken too. */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const raw = (Array.isArray(header) ? (header[0] ?? '') : header).trim();
  const key = /^".*"$/.test(raw) ? raw.slice(1, -1) : raw;
  if (key.length < 1 || key.length > 255 || !/^[\x21-\x7e]+$/.test(key)) {
    throw validationError([{ field: 'headers.idempotency-key', message: 'must be 1 to 255 visible ASCII characters' }]);
  }
  return key;
}

/** JSON with object keys sorted, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are the same request. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method.toUpperCase()} ${path}\n${canonicalJson(body)}`)
    .digest('hex');
}
