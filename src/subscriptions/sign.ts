import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

export const SIGNATURE_SCHEMES = ['standard-webhooks', 'x-sender-signature', 'x-curacel-signature'] as const;
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

/**
 * Signature headers for one delivery attempt.
 * - standard-webhooks (https://www.standardwebhooks.com): `webhook-id` (stable across retries),
 *   `webhook-timestamp` (unix seconds), `webhook-signature` = `v1,` base64 HMAC-SHA256 of
 *   `id.timestamp.body` with the base64-decoded `whsec_` secret.
 * - x-sender-signature (Tyro Health, seed 004): `X-Sender-Timestamp` an ISO date string and
 *   `X-Sender-Signature` the hex HMAC-SHA256 of timestamp + body, keyed with the secret as given.
 * - x-curacel-signature (Curacel, seeds 001 and 003): `x-curacel-signature` the hex HMAC-SHA256 of
 *   the body, keyed with the secret as given; no timestamp.
 */
export function signatureHeaders(
  scheme: SignatureScheme,
  secret: string,
  webhookId: string,
  body: string,
  now: Date = new Date(),
): Record<string, string> {
  if (scheme === 'x-curacel-signature') {
    return { 'x-curacel-signature': createHmac('sha256', secret).update(body).digest('hex') };
  }
  if (scheme === 'x-sender-signature') {
    const timestamp = now.toISOString();
    const signature = createHmac('sha256', secret).update(timestamp + body).digest('hex');
    return { 'X-Sender-Timestamp': timestamp, 'X-Sender-Signature': signature };
  }
  const seconds = Math.floor(now.getTime() / 1000);
  return {
    'webhook-id': webhookId,
    'webhook-timestamp': String(seconds),
    'webhook-signature': new Webhook(secret).sign(webhookId, now, body),
  };
}
