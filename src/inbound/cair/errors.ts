import { OperationOutcomeError } from '@medplum/core';
import type { z } from 'zod';
import { databaseUnavailable } from '../../db/unavailable.ts';
import { BillingFailure } from '../../billing/index.ts';
import type { Refusal } from '../../billing/index.ts';

/**
 * Every answer of the Cair webhook other than 200, as a value with its status and body in the
 * contract's shape (shared/seeds/000):
 *   400 {"error": "Invalid request body", "details": [{"path": ["paymentAmount"], "message": "..."}]}
 *   404 {"error": "Claim not found for billId: <billId>"}
 *   500 {"error": "Failed to process payment", "details": "..."}
 * and, when the database is unreachable, the 500's shape as a 503 with Retry-After (resending is
 * safe: a payment is applied whole or not at all, and a resend never doubles it).
 * (401 {"error": "Invalid or expired access token"} is auth/'s webhookAuth.)
 */
export type CairError =
  | { status: 400 | 413; body: { error: 'Invalid request body'; details: CairErrorDetail[] } }
  | { status: 404; body: { error: string } }
  | { status: 500; body: { error: 'Failed to process payment'; details: string } }
  | { status: 503; body: { error: 'Failed to process payment'; details: string }; retryAfterSeconds: number };

export interface CairErrorDetail {
  path: (string | number)[];
  message: string;
}

export const cairError = {
  invalid(details: CairErrorDetail[], status: 400 | 413 = 400): CairError {
    return { status, body: { error: 'Invalid request body', details } };
  },
  fromZod(error: z.ZodError): CairError {
    return cairError.invalid(error.issues.map((i) => ({ path: i.path.map((p) => (typeof p === 'number' ? p : String(p))), message: i.message })));
  },
  claimNotFound(billId: string): CairError {
    return { status: 404, body: { error: `Claim not found for billId: ${billId}` } };
  },
  failed(details: string): CairError {
    return { status: 500, body: { error: 'Failed to process payment', details } };
  },
  /** A billing refusal: an unknown claim is the contract's 404; a conflicting field a 400 on that field. */
  fromRefusal(r: Refusal, billId: string): CairError {
    if (r.code === 'not-found') return cairError.claimNotFound(billId);
    return cairError.invalid([{ path: r.field ? [r.field] : [], message: r.message }]);
  },
  /**
   * Something failed while processing (everything was rolled back). What the sender may read:
   * billing's own failures and validation issues of the resources we would have written; anything
   * else (a database error, a bug) only by request id, the details go to the log.
   */
  fromException(err: unknown, requestId: string): CairError {
    const unavailable = databaseUnavailable(err);
    if (unavailable) return { status: 503, body: { error: 'Failed to process payment', details: unavailable.message }, retryAfterSeconds: unavailable.retryAfterSeconds };
    if (err instanceof BillingFailure) return cairError.failed(err.message);
    if (err instanceof OperationOutcomeError) {
      const issues = (err.outcome.issue ?? []).map((i) => [i.details?.text ?? i.diagnostics ?? i.code, i.expression?.length ? `(at ${i.expression.join(', ')})` : ''].filter(Boolean).join(' '));
      return cairError.failed(issues.join('; ') || 'A resource could not be written');
    }
    return cairError.failed(`Unexpected error while processing the payment; nothing was recorded (request id ${requestId})`);
  },
};
