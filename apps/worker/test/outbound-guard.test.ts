/**
 * The outbound guard against a real trap: an HTTP server on every local address that must
 * receive nothing, aimed at by every spelling of a loopback or local address we know, through
 * deliver() (the worker's path) and through the guarded dispatcher alone (so the connect-time
 * checks are tested without the URL check in front of them).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { Target } from '@tickwork/core';
import { createDispatchers, deliver, DestinationNotAllowedError, type OutboundPolicy } from '../src/index.ts';

let trap: Server;
let trapPort: number;
const trapped: string[] = [];
let sink: Server;
let sinkPort: number;
const sunk: string[] = [];

async function listen(server: Server, host: string): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  // '::' takes IPv4 too (dual stack): 127.0.0.1, 127.0.0.2, 0.0.0.0 and ::1 all reach it.
  trap = createServer((req, res) => {
    trapped.push(`${req.method} ${req.headers.host}${req.url}`);
    res.end('trapped');
  });
  trapPort = await listen(trap, '::');
  sink = createServer((req, res) => {
    sunk.push(req.url ?? '');
    if (req.url === '/redirect') {
      res.writeHead(302, { location: `http://127.0.0.1:${trapPort}/followed` }).end();
      return;
    }
    res.end('ok');
  });
  sinkPort = await listen(sink, '127.0.0.1');
});
afterAll(async () => {
  trap?.closeAllConnections();
  sink?.closeAllConnections();
  await Promise.all([new Promise((r) => trap?.close(r)), new Promise((r) => sink?.close(r))]);
});

const spellings = () => [
  `http://127.0.0.1:${trapPort}/`,
  `http://127.0.0.2:${trapPort}/`,
  `http://2130706433:${trapPort}/`,
  `http://0x7f000001:${trapPort}/`,
  `http://0x7f.1:${trapPort}/`,
  `http://127.1:${trapPort}/`,
  `http://0177.0.0.1:${trapPort}/`,
  `http://017700000001:${trapPort}/`,
  `http://127.000.000.001:${trapPort}/`,
  `http://127.0.0.1.:${trapPort}/`,
  `http://%31%32%37.0.0.1:${trapPort}/`,
  `http://１２７.０.０.１:${trapPort}/`,
  `http://0:${trapPort}/`,
  `http://0.0.0.0:${trapPort}/`,
  `http://[::]:${trapPort}/`,
  `http://[::1]:${trapPort}/`,
  `http://[0:0:0:0:0:0:0:1]:${trapPort}/`,
  `http://[::ffff:127.0.0.1]:${trapPort}/`,
  `http://[::ffff:7f00:1]:${trapPort}/`,
  `http://[0:0:0:0:0:ffff:7f00:1]:${trapPort}/`,
  `http://[::ffff:0:127.0.0.1]:${trapPort}/`,
  `http://[::127.0.0.1]:${trapPort}/`,
  `http://[64:ff9b::127.0.0.1]:${trapPort}/`,
  `http://localhost:${trapPort}/`,
  `http://LOCALHOST.:${trapPort}/`,
  `http://trap.localhost:${trapPort}/`,
  `https://127.0.0.1:${trapPort}/`,
  `http://169.254.169.254:${trapPort}/latest/meta-data/`,
  `http://[fd00:ec2::254]:${trapPort}/`,
  `http://100.100.100.200:${trapPort}/`,
];

const target = (url: string): Target => ({ url, method: 'POST', headers: {}, body: { probe: true }, timeoutMs: 2_000 });
const delivery = (url: string) => ({
  runId: '0190a0a0-0000-7000-8000-000000000001',
  jobId: '0190a0a0-0000-7000-8000-000000000002',
  scheduledFor: Date.now(),
  attempt: 1,
  trigger: 'schedule',
  target: target(url),
  signingSecrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
});

describe('outbound guard against a local trap', () => {
  const strict: OutboundPolicy = { allowPrivate: false, allowedHosts: [] };

  it('refuses every spelling through deliver(), final (not retried); the trap receives nothing', async () => {
    const dispatchers = createDispatchers(strict);
    try {
      for (const url of spellings()) {
        const outcome = await deliver(delivery(url), strict, dispatchers);
        expect(outcome.result.kind, url).toBe('refused');
        expect(outcome.httpStatus).toBeNull();
      }
    } finally {
      await Promise.all([dispatchers.guarded.close(), dispatchers.allowListed.close()]);
    }
    expect(trapped).toEqual([]);
  });

  it('refuses at connect time too: the guarded dispatcher alone, without the URL check in front', async () => {
    const { guarded, allowListed } = createDispatchers(strict);
    try {
      for (const url of spellings()) {
        const error = await request(url, { method: 'GET', dispatcher: guarded }).then(
          () => undefined,
          (e: unknown) => e,
        );
        let refusal: unknown = error;
        while (refusal && !(refusal instanceof DestinationNotAllowedError))
          refusal = (refusal as { cause?: unknown }).cause;
        // A name this machine cannot resolve (`localhost.` on some resolvers) never connects either.
        const unresolved = (error as { code?: string } | undefined)?.code === 'ENOTFOUND';
        expect(refusal instanceof DestinationNotAllowedError || unresolved, `${url}: ${String(error)}`).toBe(true);
      }
    } finally {
      await Promise.all([guarded.close(), allowListed.close()]);
    }
    expect(trapped).toEqual([]);
  });

  it('lets an allow-listed host:port through and nothing else; does not follow redirects', async () => {
    const policy: OutboundPolicy = { allowPrivate: false, allowedHosts: [`127.0.0.1:${sinkPort}`] };
    const dispatchers = createDispatchers(policy);
    try {
      const ok = await deliver(delivery(`http://127.0.0.1:${sinkPort}/hook`), policy, dispatchers);
      expect(ok).toMatchObject({ result: { kind: 'response', status: 200 }, httpStatus: 200 });
      const redirected = await deliver(delivery(`http://127.0.0.1:${sinkPort}/redirect`), policy, dispatchers);
      expect(redirected.httpStatus).toBe(302);
      const otherPort = await deliver(delivery(`http://127.0.0.1:${trapPort}/`), policy, dispatchers);
      expect(otherPort.result.kind).toBe('refused');
    } finally {
      await Promise.all([dispatchers.guarded.close(), dispatchers.allowListed.close()]);
    }
    expect(sunk).toEqual(['/hook', '/redirect']);
    expect(trapped).toEqual([]);
  });

  it('reaches private addresses only with CALLBACK_ALLOW_PRIVATE', async () => {
    const open: OutboundPolicy = { allowPrivate: true, allowedHosts: [] };
    const dispatchers = createDispatchers(open);
    try {
      const outcome = await deliver(delivery(`http://localhost:${sinkPort}/open`), open, dispatchers);
      expect(outcome.httpStatus).toBe(200);
    } finally {
      await Promise.all([dispatchers.guarded.close(), dispatchers.allowListed.close()]);
    }
    expect(sunk).toContain('/open');
  });
});
