/**
 * Credentials: API keys (shown once, stored as SHA-256), Standard Webhooks signing secrets
 * (stored encrypted with AES-256-GCM under SECRET_KEY) and callback signatures.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const API_KEY_PREFIX = 'tw_';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const API_KEY_BODY_LENGTH = 40;

/** What an API key looks like: a token of another shape is refused without a database lookup. */
export const API_KEY_PATTERN = /^tw_[0-9A-Za-z]{40}$/;

/**
 * A new API key: `tw_` and 40 base62 characters (~238 bits). The prefix makes a leaked key easy
 * to spot (secret scanners, logs). Bytes of 248 and above are dropped rather than folded with
 * `% 62`, so every character is equally likely.
 */
export function generateApiKey(): string {
  let out = '';
  while (out.length < API_KEY_BODY_LENGTH) {
    for (const byte of randomBytes(API_KEY_BODY_LENGTH)) {
      if (byte < 248 && out.length < API_KEY_BODY_LENGTH) out += BASE62[byte % 62];
    }
  }
  return API_KEY_PREFIX + out;
}

export function hashApiKey(apiKey: string): string {
  return apiKeyDigest(apiKey).toString('hex');
}

/** {@link hashApiKey} as bytes: what a request's credential is compared by. */
export function apiKeyDigest(apiKey: string): Buffer {
  return createHash('sha256').update(apiKey).digest();
}

/** Whether a stored key hash ({@link hashApiKey}) is this digest ({@link apiKeyDigest}), in constant time. */
export function isDigestOf(storedHash: string, digest: Buffer): boolean {
  const stored = Buffer.from(storedHash, 'hex');
  return stored.length === digest.length && timingSafeEqual(stored, digest);
}

/** The part of a key safe to show again: enough to recognise it in a list. */
export function displayPrefixOf(apiKey: string): string {
  return apiKey.slice(0, API_KEY_PREFIX.length + 6);
}

/** Compares two secrets in time that depends on neither, nor on their lengths (both are hashed first). */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a).digest();
  const right = createHash('sha256').update(b).digest();
  return timingSafeEqual(left, right);
}

/** A Standard Webhooks secret: `whsec_` and 32 random bytes in base64. */
export function generateSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

function keyOf(secretKey: string): Buffer {
  return createHash('sha256').update(secretKey).digest();
}

/** Encrypts with AES-256-GCM: `v1.<iv>.<tag>.<ciphertext>`, base64url parts. */
export function encryptSecret(plain: string, secretKey: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyOf(secretKey), iv);
  const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv, cipher.getAuthTag(), ciphertext]
    .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
    .join('.');
}

export function decryptSecret(sealed: string, secretKey: string): string {
  const [version, iv, tag, ciphertext] = sealed.split('.');
  if (version !== 'v1' || !iv || !tag || ciphertext === undefined) throw new Error('not an encrypted secret');
  const decipher = createDecipheriv('aes-256-gcm', keyOf(secretKey), Buffer.from(iv, 'base64url'));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
}

/**
 * The keys that seal secrets at rest: `current` (SECRET_KEY) seals every new write; `previous`
 * (SECRET_KEY_PREVIOUS), while a rotation is under way, still opens what it sealed.
 */
export interface SecretKeys {
  current: string;
  previous?: string | undefined;
}

/** Opens a sealed secret under the current key, else under the previous one; throws when neither opens it. */
export function openSecret(sealed: string, keys: SecretKeys): string {
  try {
    return decryptSecret(sealed, keys.current);
  } catch (error) {
    if (keys.previous === undefined) throw error;
    return decryptSecret(sealed, keys.previous);
  }
}

/** Whether `sealed` opens under `key` (AES-GCM's tag says so): what `npm run rekey` asks of every value. */
export function isSealedUnder(sealed: string, key: string): boolean {
  try {
    decryptSecret(sealed, key);
    return true;
  } catch {
    return false;
  }
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under a `whsec_` secret (Standard Webhooks). */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}
