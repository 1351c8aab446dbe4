/**
 * deliver()'s deadline against a real server that never answers: the target's timeout is a
 * `timeout` outcome with its text, the job's signal aborting is a `connection` one (not a timeout),
 * and a delivery that ends leaves no listener on the job's long-lived signal.
 */
import { getEventListeners } from 'node:events';
import { createServer, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutboundPolicy } from '@tickwork/core';
import { createDispatchers, deliver } from '../src/index.ts';

let server: Server;
let port: number;
const received: string[] = [];
const hanging: ServerResponse[] = [];
let onRequest: (() => void) | undefined;

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push(req.url ?? '');
    onRequest?.();
    if (req.url === '/hang') hanging.push(res);
    else res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  for (const res of hanging) res.destroy();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
});

const policy: OutboundPolicy = { allowPrivate: true, allowedHosts: [] };
const delivery = (path: string, timeoutMs: number) => ({
  runId: '0190a0a0-0000-7000-8000-000000000011',
  jobId: '0190a0a0-0000-7000-8000-000000000012',
  scheduledFor: Date.now(),
  attempt: 1,
  trigger: 'schedule',
  target: { url: `http://127.0.0.1:${port}${path}`, method: 'POST' as const, headers: {}, timeoutMs },
  signingSecrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
});

describe('deliver() within the deadline', () => {
  it('a target that does not answer within timeoutMs is a timeout, with its text', async () => {
    const dispatchers = createDispatchers(policy);
    const job = new AbortController();
    try {
      const outcome = await deliver(delivery('/hang', 200), policy, dispatchers, job.signal);
      expect(outcome).toMatchObject({
        result: { kind: 'timeout' },
        httpStatus: null,
        responseExcerpt: null,
        error: 'timed out after 200 ms',
      });
      expect(outcome.durationMs).toBeGreaterThanOrEqual(190);
      expect(getEventListeners(job.signal, 'abort')).toHaveLength(0);
    } finally {
      await Promise.all([dispatchers.guarded.destroy(), dispatchers.allowListed.destroy()]);
    }
  });

  it("the job's signal aborting in flight ends the delivery at once as a connection outcome, not a timeout", async () => {
    const dispatchers = createDispatchers(policy);
    const job = new AbortController();
    try {
      const arrived = new Promise<void>((resolve) => {
        onRequest = resolve;
      });
      const pending = deliver(delivery('/hang', 10_000), policy, dispatchers, job.signal);
      await arrived;
      job.abort();
      const outcome = await pending;
      expect(outcome.result.kind).toBe('connection');
      expect(outcome.error).toMatch(/aborted/i);
      expect(outcome.durationMs).toBeLessThan(5_000);
      expect(getEventListeners(job.signal, 'abort')).toHaveLength(0);
    } finally {
      onRequest = undefined;
      await Promise.all([dispatchers.guarded.destroy(), dispatchers.allowListed.destroy()]);
    }
  });

  it('an already aborted signal sends nothing', async () => {
    const dispatchers = createDispatchers(policy);
    const before = received.length;
    try {
      const outcome = await deliver(delivery('/never', 10_000), policy, dispatchers, AbortSignal.abort());
      expect(outcome.result.kind).toBe('connection');
      expect(outcome.error).toMatch(/aborted/i);
    } finally {
      await Promise.all([dispatchers.guarded.destroy(), dispatchers.allowListed.destroy()]);
    }
    expect(received.slice(before)).toEqual([]);
  });

  it("many answered deliveries leave no listener on the job's signal", async () => {
    const dispatchers = createDispatchers(policy);
    const job = new AbortController();
    try {
      for (let i = 0; i < 20; i++) {
        const outcome = await deliver(delivery('/ok', 10_000), policy, dispatchers, job.signal);
        expect(outcome).toMatchObject({ result: { kind: 'response', status: 200 }, responseExcerpt: 'ok' });
      }
      expect(getEventListeners(job.signal, 'abort')).toHaveLength(0);
    } finally {
      await Promise.all([dispatchers.guarded.close(), dispatchers.allowListed.close()]);
    }
  });
});
