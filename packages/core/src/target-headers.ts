/**
 * Secrets in a target's headers: which headers are sensitive, how they are shown (`"***"`) and
 * how their values are kept at rest (sealed with AES-256-GCM under SECRET_KEY, like signing
 * secrets; {@link SecretKeys}).
 */
import { encryptSecret, openSecret, type SecretKeys } from './secrets.ts';

/** What a sensitive header's value is shown as, in every response and log line. */
export const REDACTED = '***';

/** Headers whose values are always secret, whatever the job says. */
export const SENSITIVE_HEADERS: readonly string[] = ['authorization', 'cookie', 'proxy-authorization', 'x-api-key'];

/** Whether a header's value is secret: one of {@link SENSITIVE_HEADERS} or a name the job lists in `secretHeaders`. */
export function isSensitiveHeader(name: string, secretHeaders: readonly string[] = []): boolean {
  const lower = name.toLowerCase();
  return SENSITIVE_HEADERS.includes(lower) || secretHeaders.some((secret) => secret.toLowerCase() === lower);
}

/** The headers as they may be shown: every sensitive value replaced by {@link REDACTED}. */
export function redactHeaders(
  headers: Record<string, string>,
  secretHeaders: readonly string[] = [],
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => [name, isSensitiveHeader(name, secretHeaders) ? REDACTED : value]),
  );
}

/** A target's headers as stored: the whole map as JSON, sealed; null when there are none (nothing to hide). */
export function sealHeaders(headers: Record<string, string>, keys: SecretKeys): string | null {
  return Object.keys(headers).length === 0 ? null : encryptSecret(JSON.stringify(headers), keys.current);
}

/** Opens what {@link sealHeaders} sealed, under the current key or the previous one. */
export function openHeaders(sealed: string, keys: SecretKeys): Record<string, string> {
  return JSON.parse(openSecret(sealed, keys)) as Record<string, string>;
}

/**
 * Log paths (pino's `redact`) of every sensitive header under each of `prefixes`, e.g.
 * `req.headers["x-api-key"]`. A target's own headers are redacted whole wherever a line could
 * carry them (`target.headers`): a log line does not know the job's `secretHeaders`.
 */
export function sensitiveHeaderLogPaths(prefixes: readonly string[]): string[] {
  return prefixes.flatMap((prefix) => SENSITIVE_HEADERS.map((name) => `${prefix}[${JSON.stringify(name)}]`));
}
