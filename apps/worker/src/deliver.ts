/**
 * One HTTP callback: build the request (Standard Webhooks headers, Tickwork's own headers),
 * send it through the guarded dispatcher within the target's timeout, and read the outcome.
 * Redirects are not followed; the response body is read up to 1 KiB and the rest discarded.
 */
import { request, type Dispatcher } from 'undici';
import { isHostAllowListed, signWebhook, type AttemptResult, type OutboundPolicy, type Target } from '@tickwork/core';
import { DestinationNotAllowedError, checkUrl } from './outbound-guard.ts';

export { createDispatchers } from './outbound-guard.ts';

export const USER_AGENT = 'Tickwork/0.1.0';
const EXCERPT_BYTES = 1024;

export interface Delivery {
  runId: string;
  jobId: string;
  scheduledFor: number;
  attempt: number;
  trigger: string;
  target: Target;
  /** Current signing secret first; during a rotation, the previous one too. */
  signingSecrets: string[];
}

export interface DeliveryOutcome {
  result: AttemptResult;
  durationMs: number;
  httpStatus: number | null;
  responseExcerpt: string | null;
  error: string | null;
}

/**
 * The callback's body, the bytes the client stored: a string as it is, anything else as the JSON
 * text it was sent as (key order and spacing kept). And the content-type those bytes are.
 */
export function bodyOf(target: Target): { body: string | undefined; contentType: string | undefined } {
  if (target.method === 'GET' || target.body === undefined) return { body: undefined, contentType: undefined };
  if (typeof target.body === 'string') return { body: target.body, contentType: 'text/plain; charset=utf-8' };
  return { body: target.bodyText ?? JSON.stringify(target.body), contentType: 'application/json' };
}

export function headersFor(delivery: Delivery, body: string, nowSeconds: number): Record<string, string> {
  const signature = delivery.signingSecrets
    .map((secret) => signWebhook(secret, delivery.runId, nowSeconds, body))
    .join(' ');
  return {
    'webhook-id': delivery.runId,
    'webhook-timestamp': String(nowSeconds),
    ...(signature ? { 'webhook-signature': signature } : {}),
    'idempotency-key': delivery.runId,
    'tickwork-job-id': delivery.jobId,
    'tickwork-scheduled-for': new Date(delivery.scheduledFor).toISOString(),
    'tickwork-attempt': String(delivery.attempt),
    'tickwork-trigger': delivery.trigger,
    'user-agent': USER_AGENT,
  };
}

async function readExcerpt(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size >= EXCERPT_BYTES) break;
  }
  // Dropping the rest keeps the connection reusable without reading a large body.
  await body.dump({ limit: 64 * 1024 }).catch(() => {});
  return Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8');
}

function isRefusal(error: unknown): DestinationNotAllowedError | undefined {
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
    if (e instanceof DestinationNotAllowedError) return e;
  }
  return undefined;
}

export async function deliver(
  delivery: Delivery,
  policy: OutboundPolicy,
  dispatchers: { guarded: Dispatcher; allowListed: Dispatcher },
  signal?: AbortSignal,
): Promise<DeliveryOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const { body, contentType } = bodyOf(delivery.target);
  let url: URL;
  try {
    url = new URL(delivery.target.url);
    checkUrl(policy, url);
  } catch (error) {
    const message =
      error instanceof DestinationNotAllowedError ? error.message : `invalid URL: ${(error as Error).message}`;
    return {
      result: { kind: 'refused', message },
      durationMs: 0,
      httpStatus: null,
      responseExcerpt: null,
      error: message,
    };
  }
  // The job's own content-type, in any spelling of the name, wins over the one its body implies.
  const ownContentType = Object.keys(delivery.target.headers).some((name) => name.toLowerCase() === 'content-type');
  const headers = {
    ...(contentType && !ownContentType ? { 'content-type': contentType } : {}),
    ...delivery.target.headers,
    ...headersFor(delivery, body ?? '', Math.floor(Date.now() / 1000)),
  };
  const dispatcher = isHostAllowListed(policy, url) ? dispatchers.allowListed : dispatchers.guarded;
  // One controller per delivery, its timer cleared and its listener on the job's signal removed
  // when the delivery ends: `AbortSignal.timeout` keeps its timer, and `AbortSignal.any` its
  // links to the sources, past the young generation, so every delivery's signals reached the
  // old one (bench/RESULTS.md, "the delivery's timeout without AbortSignal.any").
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(`timed out after ${delivery.target.timeoutMs} ms`, 'TimeoutError'));
  }, delivery.target.timeoutMs);
  timer.unref();
  const onAbort = () => controller.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const response = await request(url, {
      method: delivery.target.method,
      headers,
      body,
      dispatcher,
      signal: controller.signal,
      headersTimeout: delivery.target.timeoutMs,
      bodyTimeout: delivery.target.timeoutMs,
    });
    const excerpt = await readExcerpt(response.body).catch(() => '');
    const retryAfter = response.headers['retry-after'];
    return {
      result: {
        kind: 'response',
        status: response.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
      },
      durationMs: elapsed(),
      httpStatus: response.statusCode,
      responseExcerpt: excerpt,
      error: response.statusCode >= 200 && response.statusCode < 300 ? null : `HTTP ${response.statusCode}`,
    };
  } catch (error) {
    const refusal = isRefusal(error);
    if (refusal) {
      return {
        result: { kind: 'refused', message: refusal.message },
        durationMs: elapsed(),
        httpStatus: null,
        responseExcerpt: null,
        error: 'destination not allowed',
      };
    }
    if (timedOut) {
      const message = `timed out after ${delivery.target.timeoutMs} ms`;
      return {
        result: { kind: 'timeout' },
        durationMs: elapsed(),
        httpStatus: null,
        responseExcerpt: null,
        error: message,
      };
    }
    const code = (error as { code?: string }).code;
    const message = `${code ? `${code}: ` : ''}${(error as Error).message}`.slice(0, 500);
    return {
      result: { kind: 'connection', message },
      durationMs: elapsed(),
      httpStatus: null,
      responseExcerpt: null,
      error: message,
    };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}
