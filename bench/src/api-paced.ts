/**
 * An open-loop shot at a steady rate: request i is due at `i / rate` seconds and sent then (a
 * 1 ms clock), whatever the answers before it did, on a pool of 50 keep-alive connections;
 * its latency counts from that due instant, so a request that waited for a free connection
 * counts its wait (no coordinated omission).
 *
 * autocannon's `overallRate` is not this: each connection sends back to back until its share of
 * the second is spent, then idles until the next second, so "half the peak rate" arrives as the
 * peak's burst for half of every second, and its p99 is the peak's queueing. The p99 an operator
 * sees at half the peak is this one's.
 */
import type autocannon from 'autocannon';
import { Pool } from 'undici';
import { percentile } from './stats.ts';

export interface PacedRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface PacedShot {
  rate: number;
  sent: number;
  reqPerSec: number;
  p50: number;
  p99: number;
  /** How late the pacer itself sent (p99, ms): above a few ms the load generator fell behind, not the server. */
  sendLateP99: number;
  errors: number;
}

export async function pacedShot(
  origin: string,
  next: () => PacedRequest,
  rate: number,
  seconds: number,
): Promise<PacedShot> {
  const pool = new Pool(origin, { connections: 50, pipelining: 1 });
  const latencies: number[] = [];
  const late: number[] = [];
  const pending = new Set<Promise<void>>();
  let errors = 0;
  let sent = 0;
  const start = performance.now();
  const fire = (due: number) => {
    late.push(performance.now() - due);
    const request = next();
    const done = pool
      .request(request)
      .then(async (response) => {
        await response.body.dump();
        if (response.statusCode >= 300) errors++;
      })
      .catch(() => {
        errors++;
      })
      .finally(() => {
        latencies.push(performance.now() - due);
        pending.delete(done);
      });
    pending.add(done);
  };
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= seconds * 1000) break;
    // Request i is due at i / rate: every i up to elapsed · rate is due now (without the + 1, each
    // went one interval late, 59 ms at 17/s, and that interval counted as the server's latency).
    const due = Math.floor((elapsed / 1000) * rate) + 1;
    while (sent < due && sent < rate * seconds) {
      fire(start + (sent * 1000) / rate);
      sent++;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  const took = (performance.now() - start) / 1000;
  await pool.close();
  const round1 = (ms: number) => Math.round(ms * 10) / 10;
  return {
    rate,
    sent,
    reqPerSec: Math.round(latencies.length / took),
    p50: round1(percentile(latencies, 50)),
    p99: round1(percentile(latencies, 99)),
    sendLateP99: round1(percentile(late, 99)),
    errors,
  };
}

/** The requests of an autocannon shot (its url, or its first request and `setupRequest`), one by one. */
export function pacedFrom(options: autocannon.Options): { origin: string; next: () => PacedRequest } {
  const url = new URL(String(options.url));
  const base = options.requests?.[0];
  const headers = (base?.headers ?? options.headers ?? {}) as Record<string, string>;
  const first: PacedRequest = {
    method: (base?.method ?? options.method ?? 'GET') as PacedRequest['method'],
    path: base?.path ?? `${url.pathname}${url.search}`,
    headers,
  };
  // autocannon's types allow a file path here too; the benches pass functions.
  const setup = base?.setupRequest as ((request: PacedRequest, context: object) => PacedRequest) | undefined;
  return {
    origin: url.origin,
    next: () => {
      if (!setup) return first;
      const made = setup({ ...first }, {});
      return { method: made.method, path: made.path, headers: made.headers, body: made.body };
    },
  };
}
