/**
 * Where callbacks may go: only public unicast addresses, unless the operator says otherwise.
 * Pure computation, shared by the api (which refuses a plainly bad URL at create) and the worker
 * (which checks the address it actually connects to). docs/security.md explains the threat.
 *
 * Every spelling of an address is brought to one form first: the WHATWG URL parser turns
 * `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1` and full-width digits into `127.0.0.1`, and
 * IPv6 into its canonical compressed form, so the checks below see one spelling per address.
 */
import { isIP } from 'node:net';

interface Range {
  base: bigint;
  bits: number;
  why: string;
}

function v4ToBigint(address: string): bigint {
  return address.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

/** The 128-bit value of a canonical IPv6 address (no zone, no dotted tail). */
function v6ToBigint(canonical: string): bigint {
  const [head = '', tail] = canonical.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((n, group) => (n << 16n) | BigInt(parseInt(group, 16)), 0n);
}

function range(family: 4 | 6, base: string, bits: number, why: string): Range {
  return { base: family === 4 ? v4ToBigint(base) : v6ToBigint(canonicalIpv6(base)!), bits, why };
}

function inRange(value: bigint, width: number, r: Range): boolean {
  const shift = BigInt(width - r.bits);
  return value >> shift === r.base >> shift;
}

/** IPv4 blocks a callback may not reach (IANA special-purpose registry, plus cloud metadata). */
const V4_REFUSED: Range[] = [
  range(4, '0.0.0.0', 8, 'unspecified ("this network")'),
  range(4, '10.0.0.0', 8, 'private'),
  range(4, '100.64.0.0', 10, 'CGNAT shared space (also Alibaba Cloud metadata)'),
  range(4, '127.0.0.0', 8, 'loopback'),
  range(4, '169.254.0.0', 16, 'link-local (cloud metadata 169.254.169.254)'),
  range(4, '172.16.0.0', 12, 'private'),
  range(4, '192.0.0.0', 24, 'IETF protocol assignments (Oracle Cloud metadata 192.0.0.192)'),
  range(4, '192.0.2.0', 24, 'documentation'),
  range(4, '192.88.99.0', 24, '6to4 relay anycast'),
  range(4, '192.168.0.0', 16, 'private'),
  range(4, '198.18.0.0', 15, 'benchmarking'),
  range(4, '198.51.100.0', 24, 'documentation'),
  range(4, '203.0.113.0', 24, 'documentation'),
  range(4, '224.0.0.0', 4, 'multicast'),
  range(4, '240.0.0.0', 4, 'reserved (and broadcast)'),
  // A public address by its numbers, but it answers only from inside Azure (metadata, DNS).
  range(4, '168.63.129.16', 32, 'cloud metadata (Azure WireServer)'),
];

/** IPv6 forms that carry an IPv4 address in their low 32 bits: judged by that address. */
const V6_EMBEDDING: Range[] = [
  range(6, '::ffff:0:0', 96, 'IPv4-mapped'),
  range(6, '::ffff:0:0:0', 96, 'IPv4-translated (SIIT)'),
  range(6, '64:ff9b::', 96, 'NAT64'),
];

/** Inside global unicast (2000::/3), the blocks that are not reachable or not for callbacks. */
const V6_REFUSED: Range[] = [
  range(6, '2001::', 23, 'IETF protocol assignments (Teredo, ORCHID, benchmarking)'),
  range(6, '2001:db8::', 32, 'documentation'),
  range(6, '2002::', 16, '6to4 (deprecated; embeds IPv4)'),
  range(6, '3fff::', 20, 'documentation'),
];
const V6_GLOBAL_UNICAST = range(6, '2000::', 3, '');

/** The canonical form of an IPv6 address, or undefined when it is not one. */
export function canonicalIpv6(address: string): string | undefined {
  const bare = address.replace(/^\[|\]$/g, '').split('%')[0]!;
  if (isIP(bare) !== 6) return undefined;
  try {
    return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/**
 * Why a callback may not connect to this IP address, or undefined when it is public unicast.
 * Anything that is not an IP address is refused (the caller resolves names first).
 */
export function addressRefusal(address: string): string | undefined {
  const bare = address.replace(/^\[|\]$/g, '').split('%')[0]!;
  if (isIP(bare) === 4) {
    const value = v4ToBigint(bare);
    const hit = V4_REFUSED.find((r) => inRange(value, 32, r));
    return hit ? `${bare} is ${hit.why}` : undefined;
  }
  const canonical = canonicalIpv6(bare);
  if (canonical === undefined) return `${address} is not an IP address`;
  const value = v6ToBigint(canonical);
  if (value === 0n) return `${canonical} is unspecified`;
  if (value === 1n) return `${canonical} is loopback`;
  const embedding = V6_EMBEDDING.find((r) => inRange(value, 128, r));
  if (embedding) {
    const low = Number(value & 0xffffffffn);
    const v4 = [low >>> 24, (low >>> 16) & 255, (low >>> 8) & 255, low & 255].join('.');
    const inner = addressRefusal(v4);
    return inner ? `${canonical} is ${embedding.why}: ${inner}` : undefined;
  }
  if (!inRange(value, 128, V6_GLOBAL_UNICAST)) {
    return `${canonical} is not global unicast (loopback, unique-local, link-local, multicast or reserved)`;
  }
  const hit = V6_REFUSED.find((r) => inRange(value, 128, r));
  return hit ? `${canonical} is ${hit.why}` : undefined;
}

/** Whether an IP address is public unicast: the only kind callbacks reach by default. */
export function isPublicAddress(address: string): boolean {
  return addressRefusal(address) === undefined;
}

/**
 * What the operator allows beyond public addresses: `CALLBACK_ALLOW_PRIVATE=true` lifts the
 * check (development and tests only); `CALLBACK_ALLOWED_HOSTS` lets named `host` or `host:port`
 * through.
 */
export interface OutboundPolicy {
  allowPrivate: boolean;
  /** `host` or `host:port` (IPv6 in brackets), lower case. */
  allowedHosts: string[];
}

/** The policy that refuses everything but public addresses. */
export const STRICT_OUTBOUND: OutboundPolicy = { allowPrivate: false, allowedHosts: [] };

/** A host name as DNS means it: lower case, brackets and trailing dots gone. */
function hostOf(hostname: string): string {
  return hostname
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.+$/, '');
}

function defaultPort(url: URL): string {
  return url.port || (url.protocol === 'https:' ? '443' : '80');
}

/** Parses one CALLBACK_ALLOWED_HOSTS entry; undefined when it is not `host` or `host:port`. */
export function parseAllowedHost(entry: string): { host: string; port?: string } | undefined {
  try {
    const url = new URL(`http://${entry.trim()}`);
    if (url.pathname !== '/' || url.search || url.hash || url.username || url.password || url.hostname === '')
      return undefined;
    const port = /:\d+$/.test(entry.trim()) ? url.port || '80' : undefined;
    return port === undefined ? { host: hostOf(url.hostname) } : { host: hostOf(url.hostname), port };
  } catch {
    return undefined;
  }
}

export function isHostAllowListed(policy: OutboundPolicy, url: URL): boolean {
  if (policy.allowedHosts.length === 0) return false;
  const host = hostOf(url.hostname);
  const port = defaultPort(url);
  return policy.allowedHosts.some((entry) => {
    const allowed = parseAllowedHost(entry);
    return allowed !== undefined && allowed.host === host && (allowed.port === undefined || allowed.port === port);
  });
}

/**
 * Why a URL is refused before any connection is tried (scheme, credentials, a literal address
 * that is not public, `localhost`), or undefined. A host name that resolves somewhere private is
 * caught later, at connect time, on the address actually resolved.
 */
export function destinationRefusal(policy: OutboundPolicy, url: URL): string | undefined {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'only http and https';
  if (url.username || url.password) return 'credentials in the URL';
  if (policy.allowPrivate || isHostAllowListed(policy, url)) return undefined;
  const host = hostOf(url.hostname);
  if (isIP(host)) return addressRefusal(host);
  if (host === 'localhost' || host.endsWith('.localhost')) return `${host} is loopback`;
  return undefined;
}
