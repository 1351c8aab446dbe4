/**
 * Where callbacks may go. Checked at connect time on the address actually resolved, so a name
 * that resolves to a private address (or is re-pointed there later: DNS rebinding) is refused
 * as surely as a literal one. CALLBACK_ALLOW_PRIVATE=true lifts the check (tests, local use);
 * CALLBACK_ALLOWED_HOSTS lets named hosts through.
 */
import { BlockList, isIP } from 'node:net';
import dns from 'node:dns';
import type { LookupFunction } from 'node:net';

export class DestinationNotAllowedError extends Error {
  constructor(detail: string) {
    super(`destination not allowed: ${detail}`);
    this.name = 'DestinationNotAllowedError';
  }
}

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b::', 96], // NAT64 (embeds IPv4)
  ['64:ff9b:1::', 48],
  ['100::', 64], // discard
  ['2001::', 23], // IETF protocol assignments
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4 (embeds IPv4)
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
  ['fd00:ec2::254', 128], // AWS metadata over IPv6
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}

/** The IPv4 address inside an IPv4-mapped or -compatible IPv6 address, if any. */
function embeddedIpv4(address: string): string | undefined {
  const lower = address.toLowerCase();
  const dotted = /^(?:::ffff:|::ffff:0:|::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1];
  const hex = /^(?:::ffff:|::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const high = parseInt(hex[1]!, 16);
    const low = parseInt(hex[2]!, 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return undefined;
}

/** Whether an IP address is public unicast (the only kind callbacks may reach by default). */
export function isPublicAddress(address: string): boolean {
  const unbracketed = address.replace(/^\[|\]$/g, '').split('%')[0]!;
  const family = isIP(unbracketed);
  if (family === 4) return !blocked.check(unbracketed, 'ipv4');
  if (family === 6) {
    const v4 = embeddedIpv4(unbracketed);
    if (v4 !== undefined) return !blocked.check(v4, 'ipv4');
    return !blocked.check(unbracketed, 'ipv6');
  }
  return false;
}

export interface OutboundPolicy {
  allowPrivate: boolean;
  /** `host` or `host:port`, lower case. */
  allowedHosts: string[];
}

export function isHostAllowListed(policy: OutboundPolicy, hostname: string, port: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return policy.allowedHosts.includes(host) || policy.allowedHosts.includes(`${host}:${port}`);
}

/**
 * A `lookup` for net/tls connect that refuses non-public addresses. Node calls it for host
 * names only; literal IP hosts are checked by {@link checkUrl} before connecting.
 */
export function guardedLookup(policy: OutboundPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      const list = addresses as dns.LookupAddress[];
      const allowed = policy.allowPrivate ? list : list.filter((a) => isPublicAddress(a.address));
      if (allowed.length === 0) {
        return callback(new DestinationNotAllowedError(`${hostname} resolves to a non-public address`), '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, allowed);
      const first = allowed[0]!;
      callback(null, first.address, first.family);
    });
  };
}

/** Checks what can be checked before connecting: scheme, credentials, a literal address. */
export function checkUrl(policy: OutboundPolicy, url: URL): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DestinationNotAllowedError('only http and https');
  if (url.username || url.password) throw new DestinationNotAllowedError('credentials in the URL');
  if (policy.allowPrivate) return;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  if (isHostAllowListed(policy, url.hostname, port)) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) && !isPublicAddress(host)) throw new DestinationNotAllowedError(`${host} is not a public address`);
  if (host === 'localhost' || host.endsWith('.localhost')) throw new DestinationNotAllowedError('localhost');
}
