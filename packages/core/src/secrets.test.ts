import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import {
  API_KEY_PATTERN,
  constantTimeEqual,
  decryptSecret,
  displayPrefixOf,
  encryptSecret,
  generateApiKey,
  generateSigningSecret,
  hashApiKey,
  signWebhook,
} from './secrets.ts';

describe('API keys', () => {
  it('are tw_ and 40 base62 characters, all different, with a short display prefix', () => {
    const keys = Array.from({ length: 2000 }, generateApiKey);
    for (const key of keys) expect(key).toMatch(API_KEY_PATTERN);
    expect(new Set(keys).size).toBe(keys.length);
    expect(displayPrefixOf(keys[0]!)).toBe(keys[0]!.slice(0, 9));
    expect(hashApiKey(keys[0]!)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('use every base62 character (no alphabet folded away)', () => {
    const seen = new Set(Array.from({ length: 500 }, generateApiKey).join('').slice(3));
    for (const c of '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz') expect(seen.has(c)).toBe(true);
  });

  it('compare equal only when equal, whatever the lengths', () => {
    expect(constantTimeEqual('abc', 'abc')).toBe(true);
    expect(constantTimeEqual('abc', 'abd')).toBe(false);
    expect(constantTimeEqual('abc', 'abcd')).toBe(false);
    expect(constantTimeEqual('', 'a')).toBe(false);
  });
});

describe('signing secrets at rest', () => {
  const key = 'a-secret-key-of-at-least-32-characters!';
  it('round-trip through AES-256-GCM, differ on every seal, and refuse another key or a tampered text', () => {
    const secret = generateSigningSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const a = encryptSecret(secret, key);
    const b = encryptSecret(secret, key);
    expect(a).not.toBe(b);
    expect(a).not.toContain(secret.slice(6));
    expect(decryptSecret(a, key)).toBe(secret);
    expect(() => decryptSecret(a, `${key}x`)).toThrow();
    const [v, iv, tag, ct] = a.split('.');
    const flipped = Buffer.from(ct!, 'base64url');
    flipped[0]! ^= 1;
    expect(() => decryptSecret([v, iv, tag, flipped.toString('base64url')].join('.'), key)).toThrow();
  });
});

describe('Standard Webhooks signature', () => {
  it('is v1, then base64 HMAC-SHA256 of "id.timestamp.body" under the decoded secret', () => {
    const raw = Buffer.alloc(32, 3);
    const secret = `whsec_${raw.toString('base64')}`;
    const expected = createHmac('sha256', raw).update('msg_1.1700000000.{"a":1}').digest('base64');
    expect(signWebhook(secret, 'msg_1', 1_700_000_000, '{"a":1}')).toBe(`v1,${expected}`);
  });
});
