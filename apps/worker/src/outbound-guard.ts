/**
 * Where callbacks may go, enforced where the connection is made. The rules (public unicast only,
 * the allow-list, the private switch) live in core's `outbound.ts`; this file applies them to
 * real sockets, in three layers:
 *   1. `checkUrl` before sending: scheme, credentials, a literal address, `localhost`;
 *   2. the dispatcher's DNS lookup drops every non-public answer, so a name that resolves to a
 *      private address (or is re-pointed there later: DNS rebinding) never gets a connection;
 *   3. the dispatcher's connector checks the peer address of every socket it opened, so even a
 *      path that skipped 1 and 2 cannot talk to a private address.
 */
import dns from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { addressRefusal, destinationRefusal, type OutboundPolicy } from '@tickwork/core';

export { isHostAllowListed, isPublicAddress, type OutboundPolicy } from '@tickwork/core';

export class DestinationNotAllowedError extends Error {
  constructor(detail: string) {
    super(`destination not allowed: ${detail}`);
    this.name = 'DestinationNotAllowedError';
  }
}

/** A `lookup` for net/tls connect that keeps only public answers. */
export function guardedLookup(policy: OutboundPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      const list = addresses as dns.LookupAddress[];
      const allowed = policy.allowPrivate ? list : list.filter((a) => addressRefusal(a.address) === undefined);
      if (allowed.length === 0) {
        return callback(new DestinationNotAllowedError(`${hostname} resolves to no public address`), '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, allowed);
      const first = allowed[0]!;
      callback(null, first.address, first.family);
    });
  };
}

/** Throws when a URL is refused before any connection is tried. */
export function checkUrl(policy: OutboundPolicy, url: URL): void {
  const refusal = destinationRefusal(policy, url);
  if (refusal !== undefined) throw new DestinationNotAllowedError(refusal);
}

/**
 * An undici connector that refuses non-public destinations at connect time: literal addresses
 * before connecting, names through {@link guardedLookup}, and the peer address of every socket
 * once connected.
 */
export function guardedConnector(
  policy: OutboundPolicy,
  options: buildConnector.BuildOptions = {},
): buildConnector.connector {
  const connect = buildConnector({ ...options, lookup: guardedLookup(policy) });
  if (policy.allowPrivate) return connect;
  return (opts, callback) => {
    const host = opts.hostname.replace(/^\[|\]$/g, '');
    const literal = isIP(host) ? addressRefusal(host) : undefined;
    if (literal !== undefined) {
      callback(new DestinationNotAllowedError(literal), null);
      return;
    }
    connect(opts, (error, socket) => {
      if (error) return callback(error, null);
      const peer = socket!.remoteAddress;
      const refusal = peer === undefined ? 'no peer address' : addressRefusal(peer);
      if (refusal !== undefined) {
        socket!.destroy();
        return callback(new DestinationNotAllowedError(refusal), null);
      }
      callback(null, socket!);
    });
  };
}

/**
 * The two dispatchers callbacks use: `guarded` for every URL, `allowListed` (no address check)
 * only for hosts the operator named in CALLBACK_ALLOWED_HOSTS. undici's `request` follows no
 * redirect unless a redirect interceptor is added, and none is.
 */
export function createDispatchers(policy: OutboundPolicy): { guarded: Agent; allowListed: Agent } {
  const options = { keepAliveTimeout: 10_000, connections: 64 } as const;
  return {
    guarded: new Agent({ ...options, connect: guardedConnector(policy) }),
    allowListed: new Agent(options),
  };
}
