import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, secretKeysOf } from './config.ts';
import { buildJobSpec } from './job.ts';
import { encryptSecret, isSealedUnder, openSecret } from './secrets.ts';
import {
  isSensitiveHeader,
  openHeaders,
  redactHeaders,
  sealHeaders,
  sensitiveHeaderLogPaths,
} from './target-headers.ts';

const A = 'key-A-0123456789-0123456789-0123456789';
const B = 'key-B-0123456789-0123456789-0123456789';

describe('sensitive headers', () => {
  it('are the four credential headers and the job’s own secretHeaders, whatever their case', () => {
    for (const name of ['Authorization', 'COOKIE', 'proxy-authorization', 'X-Api-Key']) {
      expect(isSensitiveHeader(name)).toBe(true);
    }
    expect(isSensitiveHeader('x-tenant')).toBe(false);
    expect(isSensitiveHeader('X-Tenant', ['x-tenant'])).toBe(true);
    expect(redactHeaders({ Authorization: 'Bearer t', 'x-sig': 's', accept: 'a' }, ['X-Sig'])).toEqual({
      Authorization: '***',
      'x-sig': '***',
      accept: 'a',
    });
  });

  it('are named in the log redaction paths with bracket notation (pino)', () => {
    expect(sensitiveHeaderLogPaths(['req.headers'])).toContain('req.headers["x-api-key"]');
  });
});

describe('"***" in a definition', () => {
  const body = (headers: Record<string, string>) => ({
    name: 'j',
    schedule: { every: '1h' },
    target: { url: 'https://example.com/', headers },
  });
  it('keeps the stored value of a sensitive header (any case), and is refused without one', () => {
    const previous = buildJobSpec(body({ Authorization: 'Bearer real' }), { now: 0 });
    expect(buildJobSpec(body({ authorization: '***' }), { now: 0, previous }).target.headers).toEqual({
      authorization: 'Bearer real',
    });
    expect(() => buildJobSpec(body({ authorization: '***' }), { now: 0 })).toThrow(
      expect.objectContaining({ errors: [expect.objectContaining({ field: 'target.headers.authorization' })] }),
    );
  });
  it('is an ordinary value for a header that is not sensitive', () => {
    expect(buildJobSpec(body({ 'x-stars': '***' }), { now: 0 }).target.headers).toEqual({ 'x-stars': '***' });
  });
});

describe('the key ring', () => {
  it('opens under the current key or the previous one, and tells which one sealed a value', () => {
    const underA = encryptSecret('s', A);
    expect(openSecret(underA, { current: B, previous: A })).toBe('s');
    expect(() => openSecret(underA, { current: B })).toThrow();
    expect(isSealedUnder(underA, A)).toBe(true);
    expect(isSealedUnder(underA, B)).toBe(false);
    const sealed = sealHeaders({ authorization: 'Bearer t' }, { current: B, previous: A });
    expect(isSealedUnder(sealed!, B)).toBe(true);
    expect(openHeaders(sealed!, { current: B })).toEqual({ authorization: 'Bearer t' });
    expect(sealHeaders({}, { current: B })).toBeNull();
  });

  it('comes from SECRET_KEY and SECRET_KEY_PREVIOUS, each at least 32 characters', () => {
    expect(secretKeysOf(loadConfig({ SECRET_KEY: B, SECRET_KEY_PREVIOUS: A }))).toEqual({ current: B, previous: A });
    expect(secretKeysOf(loadConfig({ SECRET_KEY: B }))).toEqual({ current: B, previous: undefined });
    expect(() => loadConfig({ SECRET_KEY: B, SECRET_KEY_PREVIOUS: 'short' })).toThrow(ConfigError);
    expect(() => loadConfig({ SECRET_KEY: B, SECRET_KEY_PREVIOUS: 'short' })).toThrow(/SECRET_KEY_PREVIOUS/);
  });
});
