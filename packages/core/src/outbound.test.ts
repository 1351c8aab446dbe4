import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  addressRefusal,
  destinationRefusal,
  isHostAllowListed,
  isPublicAddress,
  parseAllowedHost,
  STRICT_OUTBOUND,
} from './outbound.ts';

describe('isPublicAddress', () => {
  const refused = [
    '0.0.0.0',
    '0.1.2.3',
    '10.0.0.1',
    '10.255.255.255',
    '100.64.0.1',
    '100.100.100.200',
    '127.0.0.1',
    '127.255.255.254',
    '169.254.169.254',
    '169.254.170.2',
    '172.16.0.1',
    '172.31.255.255',
    '192.0.0.192',
    '192.0.2.1',
    '192.88.99.1',
    '192.168.1.1',
    '198.18.0.1',
    '198.51.100.1',
    '203.0.113.1',
    '224.0.0.1',
    '239.255.255.250',
    '240.0.0.1',
    '255.255.255.255',
    '168.63.129.16',
    '::',
    '::1',
    '[::1]',
    '0:0:0:0:0:0:0:1',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::1',
    'fd00:ec2::254',
    'fec0::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '0:0:0:0:0:ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::ffff:169.254.169.254',
    '::ffff:0:127.0.0.1',
    '64:ff9b::7f00:1',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b:1::1',
    '::127.0.0.1',
    '::7f00:1',
    '2001:db8::1',
    '2001::1',
    '2002:7f00:1::1',
    '2002:0808:0808::1',
    '3fff::1',
    '100::1',
    '5f00::1',
    'localhost',
    'example.com',
    '',
    '1.2.3',
    '256.1.1.1',
  ];
  it.each(refused)('refuses %s', (address) => {
    expect(isPublicAddress(address)).toBe(false);
    expect(addressRefusal(address)).toEqual(expect.any(String));
  });

  const allowed = [
    '1.1.1.1',
    '8.8.8.8',
    '93.184.215.14',
    '172.15.255.255',
    '172.32.0.1',
    '100.63.255.255',
    '100.128.0.1',
    '2606:4700:4700::1111',
    '2a00:1450:4001:80b::200e',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '[2606:4700:4700::1111]',
  ];
  it.each(allowed)('allows %s', (address) => {
    expect(isPublicAddress(address)).toBe(true);
  });

  it('judges an IPv4-mapped address exactly as the IPv4 address it carries', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        expect(isPublicAddress(`::ffff:${v4}`)).toBe(isPublicAddress(v4));
        expect(isPublicAddress(`64:ff9b::${v4}`)).toBe(isPublicAddress(v4));
      }),
      { numRuns: 2000 },
    );
  });

  it('never allows an address in a refused range, however it is spelled', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffff }), (low) => {
        const v4 = `127.${low >> 16}.${(low >> 8) & 255}.${low & 255}`;
        for (const spelling of [
          v4,
          `::ffff:${v4}`,
          `::ffff:${((127 << 8) | (low >> 16)).toString(16)}:${(low & 0xffff).toString(16)}`,
        ]) {
          expect(isPublicAddress(spelling)).toBe(false);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('destinationRefusal', () => {
  const url = (u: string) => new URL(u);
  const spellings = [
    'http://127.0.0.1/',
    'http://2130706433/',
    'http://0x7f000001/',
    'http://0x7f.1/',
    'http://127.1/',
    'http://0177.0.0.1/',
    'http://017700000001/',
    'http://127.000.000.001/',
    'http://127.0.0.1./',
    'http://%31%32%37.0.0.1/',
    'http://１２７.０.０.１/',
    'http://0/',
    'http://0.0.0.0/',
    'http://[::]/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[0:0:0:0:0:ffff:7f00:1]/',
    'http://[::ffff:0:127.0.0.1]/',
    'http://[::127.0.0.1]/',
    'http://[64:ff9b::127.0.0.1]/',
    'http://localhost/',
    'http://LOCALHOST:8080/',
    'http://localhost./',
    'http://api.localhost/',
    'https://169.254.169.254/latest/meta-data/',
    'http://[fd00:ec2::254]/',
    'http://100.100.100.200/',
    'http://10.0.0.1/',
    'http://192.168.0.1/',
    'http://[fe80::1]/',
  ];
  it.each(spellings)('refuses %s', (u) => {
    expect(destinationRefusal(STRICT_OUTBOUND, url(u))).toEqual(expect.any(String));
  });

  it('refuses other schemes and credentials whatever the policy', () => {
    const open = { allowPrivate: true, allowedHosts: [] };
    expect(destinationRefusal(open, url('ftp://example.com/'))).toMatch(/http/);
    expect(destinationRefusal(open, url('file:///etc/passwd'))).toMatch(/http/);
    expect(destinationRefusal(open, url('http://user:pw@example.com/'))).toMatch(/credentials/);
  });

  it('lets public addresses and names through (names are checked again at connect time)', () => {
    expect(destinationRefusal(STRICT_OUTBOUND, url('https://example.com/hook'))).toBeUndefined();
    expect(destinationRefusal(STRICT_OUTBOUND, url('http://8.8.8.8/'))).toBeUndefined();
    expect(destinationRefusal(STRICT_OUTBOUND, url('http://[2606:4700:4700::1111]/'))).toBeUndefined();
  });

  it('lets private addresses through with CALLBACK_ALLOW_PRIVATE, and allow-listed hosts by host or host:port', () => {
    expect(destinationRefusal({ allowPrivate: true, allowedHosts: [] }, url('http://127.0.0.1:9/'))).toBeUndefined();
    const policy = { allowPrivate: false, allowedHosts: ['10.0.0.5', 'localhost:8080', '[::1]:9000'] };
    expect(destinationRefusal(policy, url('http://10.0.0.5:1234/'))).toBeUndefined();
    expect(destinationRefusal(policy, url('http://localhost:8080/'))).toBeUndefined();
    expect(destinationRefusal(policy, url('http://localhost:8081/'))).toBeDefined();
    expect(destinationRefusal(policy, url('http://[::1]:9000/'))).toBeUndefined();
    expect(destinationRefusal(policy, url('http://[::1]:9001/'))).toBeDefined();
    expect(
      isHostAllowListed(
        { allowPrivate: false, allowedHosts: ['example.internal:80'] },
        url('http://example.internal/'),
      ),
    ).toBe(true);
  });

  it('parses allow-list entries strictly', () => {
    expect(parseAllowedHost('example.com')).toEqual({ host: 'example.com' });
    expect(parseAllowedHost('example.com:8443')).toEqual({ host: 'example.com', port: '8443' });
    expect(parseAllowedHost('[::1]:80')).toEqual({ host: '::1', port: '80' });
    for (const bad of ['http://x', 'a/b', 'user@host', 'host:notaport', ''])
      expect(parseAllowedHost(bad)).toBeUndefined();
  });
});
