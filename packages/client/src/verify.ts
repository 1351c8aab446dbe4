/**
 * The receiver's check of a callback: its Standard Webhooks signature (`webhook-id`,
 * `webhook-timestamp`, `webhook-signature`) verified with the `standardwebhooks` library, under any
 * of the secrets given. During a signing-secret rotation Tickwork signs with the new and the
 * previous secret for 24 h, so a receiver holding either verifies; one that holds both (`secrets:
 * [next, current]`) can switch at its own pace.
 */
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

export { WebhookVerificationError };

/** Headers as a server framework hands them: fetch's `Headers`, Node's `IncomingHttpHeaders`, or a plain record. */
export type CallbackHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyCallbackInput {
  /** The service's signing secret (`whsec_…`), or several: any one that verifies is enough. */
  secrets: string | readonly string[];
  headers: CallbackHeaders;
  /** The body exactly as received (its bytes: not a re-serialized JSON value). */
  body: string | Uint8Array;
}

export interface VerifiedCallback {
  /** `webhook-id`: the run id, the same on every attempt; drop a repeat by it. */
  id: string;
  /** `webhook-timestamp`, within five minutes of now. */
  timestamp: Date;
  /** Which of `secrets` verified it. */
  secretIndex: number;
  /** The body as text. */
  body: string;
}

function plainHeaders(headers: CallbackHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers instanceof Headers) {
    headers.forEach((value, name) => {
      out[name] = value;
    });
    return out;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(' ') : value;
  }
  return out;
}

/**
 * Checks a callback's signature and age; throws {@link WebhookVerificationError} when no secret
 * verifies it (a forgery, a changed body, a missing header) or it is older than five minutes (a
 * replay).
 */
export function verifyCallback(input: VerifyCallbackInput): VerifiedCallback {
  const secrets = typeof input.secrets === 'string' ? [input.secrets] : input.secrets;
  if (secrets.length === 0) throw new WebhookVerificationError('No secret to verify with');
  const headers = plainHeaders(input.headers);
  const body = typeof input.body === 'string' ? input.body : Buffer.from(input.body).toString('utf8');
  let last: unknown;
  for (const [index, secret] of secrets.entries()) {
    try {
      new Webhook(secret).verify(body, headers, { jsonParse: false });
      return {
        id: headers['webhook-id']!,
        timestamp: new Date(Number(headers['webhook-timestamp']) * 1000),
        secretIndex: index,
        body,
      };
    } catch (error) {
      last = error;
    }
  }
  throw last instanceof WebhookVerificationError ? last : new WebhookVerificationError(String(last));
}
