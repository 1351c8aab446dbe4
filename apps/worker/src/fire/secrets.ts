/** The signing secrets a callback is signed with, opened once per stored value. */
import { LRUCache } from 'lru-cache';
import { openSecret, type SecretKeys } from '@tickwork/core';
import type { JobForFire } from '@tickwork/db';

/**
 * Decrypted signing secrets by (key, service, stored value). Decrypting derives a key and runs
 * AES-GCM on every callback otherwise; a rotation stores a new value (and a fresh IV), so it is a
 * new entry and the old one is never read again. Bounded: the least recently used entry goes first.
 */
const secretCache = new LRUCache<string, string>({ max: 10_000 });

function decryptCached(serviceId: string, encrypted: string, keys: SecretKeys): string {
  const key = `${keys.current}\u0000${keys.previous ?? ''}\u0000${serviceId}\u0000${encrypted}`;
  const cached = secretCache.get(key);
  if (cached !== undefined) return cached;
  const secret = openSecret(encrypted, keys);
  secretCache.set(key, secret);
  return secret;
}

/** The current signing secret first; during a rotation, until it expires, the previous one too. */
export function secretsOf(found: JobForFire, keys: SecretKeys, now: number): string[] {
  const serviceId = found.job.service_id;
  const secrets = [decryptCached(serviceId, found.service.signingSecret, keys)];
  const previous = found.service.previousSigningSecret;
  const until = found.service.previousSecretExpiresAt;
  if (previous && until && until.getTime() > now) secrets.push(decryptCached(serviceId, previous, keys));
  return secrets;
}
