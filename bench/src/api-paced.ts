/**
 * An open-loop shot at a steady rate: request i is due at `i / rate` seconds and sent then (a
 * 1 ms clock), whatever the answers before it did, on 50 keep-alive connections in all;
 * its latency counts from that due instant, so a request that waited for a free connection
 * counts its wait (no coordinated omission).
 *
 * autocannon's `overallRate` is not this: each connection sends back to back until its share of
 * the second is spent, then idles until the next second, so "half the peak rate" arrives as the
 * peak's burst for half of every second, and its p99 is the peak's queueing. The p99 an operator
 * sees at half the peak is this one's.
 */
import { once } from 'node:events';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
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
  /** Pacing threads (worker threads above 2,000/s). */
  threads: number;
}

/** What one pacing loop measured: latencies and lateness (ms) of the requests it sent. */
interface LoopResult {
  latencies: number[];
  late: number[];
  errors: number;
  sent: number;
  /** When its last answer arrived (ms since the epoch). */
  endedAt: number;
}

/** Milliseconds since the epoch, sub-millisecond: one clock across threads. */
const epochNow = () => performance.timeOrigin + performance.now();

/**
 * Sends request `offset + k·stride` (k = 0, 1, …) at `startAt + index / rate`, for `seconds`, on a
 * pool of `connections`; each latency counts from the request's due instant.
 */
async function paceLoop(
  origin: string,
  requestAt: (k: number) => PacedRequest,
  options: { rate: number; seconds: number; startAt: number; offset: number; stride: number; connections: number },
): Promise<LoopResult> {
  const { rate, seconds, startAt, offset, stride } = options;
  const pool = new Pool(origin, { connections: options.connections, pipelining: 1 });
  const latencies: number[] = [];
  const late: number[] = [];
  const pending = new Set<Promise<void>>();
  let errors = 0;
  let k = 0;
  const total = Math.ceil(rate * seconds);
  const fire = (due: number) => {
    late.push(epochNow() - due);
    const done = pool
      .request(requestAt(k))
      .then(async (response) => {
        await response.body.dump();
        if (response.statusCode >= 300) errors++;
      })
      .catch(() => {
        errors++;
      })
      .finally(() => {
        latencies.push(epochNow() - due);
        pending.delete(done);
      });
    pending.add(done);
  };
  while (epochNow() < startAt) await new Promise((resolve) => setTimeout(resolve, 1));
  for (;;) {
    const elapsed = epochNow() - startAt;
    if (elapsed >= seconds * 1000) break;
    // Request i is due at i / rate: every i up to elapsed · rate is due now (without the + 1, each
    // went one interval late, 59 ms at 17/s, and that interval counted as the server's latency).
    const due = Math.min(total, Math.floor((elapsed / 1000) * rate) + 1);
    for (let index = offset + k * stride; index < due; index = offset + k * stride) {
      fire(startAt + (index * 1000) / rate);
      k++;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  const endedAt = epochNow();
  await pool.close();
  return { latencies, late, errors, sent: k, endedAt };
}

/** How many threads pace a rate: one up to 2,000/s (`BENCH_PACER_THREADS` overrides). */
const threadsFor = (rate: number) =>
  process.env.BENCH_PACER_THREADS ? Number(process.env.BENCH_PACER_THREADS) : Math.min(4, Math.ceil(rate / 2_000));

/**
 * Above 2,000 requests a second one pacing thread falls behind (its own lateness shows it), so
 * the requests are dealt round robin to worker threads that share one clock and the 50
 * connections; their latencies are merged.
 */
export async function pacedShot(
  origin: string,
  next: () => PacedRequest,
  rate: number,
  seconds: number,
): Promise<PacedShot> {
  const threads = threadsFor(rate);
  let results: LoopResult[];
  let began = epochNow();
  if (threads <= 1) {
    const options = { rate, seconds, startAt: began, offset: 0, stride: 1, connections: 50 };
    results = [await paceLoop(origin, () => next(), options)];
  } else {
    // Made here, in order (a `setupRequest` may count), then dealt: request i to thread i mod threads.
    const all = Array.from({ length: Math.ceil(rate * seconds) }, next);
    const workers = Array.from(
      { length: threads },
      (_, t) =>
        new Worker(new URL(import.meta.url), {
          workerData: {
            origin,
            requests: all.filter((_, i) => i % threads === t),
            options: { rate, seconds, offset: t, stride: threads, connections: Math.ceil(50 / threads) },
          },
        }),
    );
    // Every thread loaded before the clock starts, so none begins late.
    await Promise.all(workers.map((worker) => once(worker, 'message')));
    const startAt = epochNow() + 50;
    results = await Promise.all(
      workers.map(async (worker) => {
        const answered = once(worker, 'message');
        worker.postMessage(startAt);
        const [result] = (await answered) as [LoopResult];
        await worker.terminate();
        return result;
      }),
    );
    began = startAt;
  }
  const latencies = results.flatMap((r) => r.latencies);
  const late = results.flatMap((r) => r.late);
  const took = (Math.max(...results.map((r) => r.endedAt)) - began) / 1000;
  const round1 = (ms: number) => Math.round(ms * 10) / 10;
  return {
    rate,
    sent: results.reduce((n, r) => n + r.sent, 0),
    reqPerSec: Math.round(latencies.length / took),
    p50: round1(percentile(latencies, 50)),
    p99: round1(percentile(latencies, 99)),
    sendLateP99: round1(percentile(late, 99)),
    errors: results.reduce((n, r) => n + r.errors, 0),
    threads,
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

if (!isMainThread && workerData?.requests) {
  const { origin, requests, options } = workerData as {
    origin: string;
    requests: PacedRequest[];
    options: Omit<Parameters<typeof paceLoop>[2], 'startAt'>;
  };
  parentPort!.once('message', async (startAt: number) => {
    parentPort!.postMessage(await paceLoop(origin, (k) => requests[k]!, { ...options, startAt }));
  });
  parentPort!.postMessage('ready');
}
