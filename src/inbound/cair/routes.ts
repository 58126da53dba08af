import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { jsonBody } from '../../http/json-guard.ts';
import { webhookAuth } from '../../auth/index.ts';
import type { AuthLocals } from '../../auth/index.ts';
import { CURRENCY, applyPatientPayment, paymentKey, refuse, toJsonNumber } from '../../billing/index.ts';
import type { AppliedPaymentOutcome, PatientPaymentInput } from '../../billing/index.ts';
import { amount } from '../../billing/index.ts';
import { FULL_ACCESS } from '../../fhir/access.ts';
import { PostgresRepository } from '../../fhir/repository.ts';
import { handleOnce, recordAlone } from '../journal.ts';
import type { Handled, InboundEvent, StoredAnswer } from '../journal.ts';
import type { InboundDeps } from '../sender.ts';
import { cairError } from './errors.ts';
import type { CairError } from './errors.ts';
import { PatientPaymentBody, isoDatePart } from './schema.ts';
import type { PatientPaymentSuccess } from './schema.ts';

export const SOURCE = 'cair';
export const PATIENT_PAYMENT_PATH = '/api/webhooks/patient-payment';

const MESSAGES: Record<AppliedPaymentOutcome['status'], string> = {
  created: 'Payment processed successfully',
  updated: 'Payment updated successfully',
  unchanged: 'Payment already processed; nothing changed',
};

/**
 * POST /api/webhooks/patient-payment (shared/seeds/000): a bearer token from /api/token with the
 * `webhook` scope (or create on PaymentReconciliation); the body is validated, then in ONE
 * transaction the event is journalled and the payment applied (billing.applyPatientPayment).
 * A duplicate of the last processed event with the same payment identity is answered with the
 * first answer and changes nothing. A payment for an unknown bill is kept for an operator
 * (`hold-for-operator`: GET /admin/unmatched-payments) and still answered 404, as the seed says.
 */
export function cairRoutes(deps: InboundDeps): Router {
  const routes = express.Router();
  const fhirBase = (req: Request): string => `${deps.baseUrl ?? `${req.protocol}://${req.get('host')}`}/fhir`;

  routes.post(
    PATIENT_PAYMENT_PATH,
    webhookAuth(deps.auth),
    // Whatever the Content-Type says, the body is read as JSON: that is all this sender sends. Its
    // shape is checked before zod (or the journal's jsonb) sees it: no deep nesting, NUL, lone surrogates.
    ...jsonBody({ type: () => true, limit: '64kb' }),
    async (req: Request, res: Response) => {
      const { tenantId } = res.locals as AuthLocals;
      const parsed = PatientPaymentBody.safeParse(req.body);
      if (!parsed.success) {
        send(res, cairError.fromZod(parsed.error));
        return;
      }
      const input = toInput(parsed.data);
      const event: InboundEvent = {
        tenantId,
        source: SOURCE,
        eventType: 'patient-payment',
        dedupeKey: paymentKey(input),
        canonical: {
          billId: input.billId,
          amount: input.amount.toFixed(2),
          paymentDate: input.paymentDate ?? null,
          paymentMethod: input.paymentMethod ?? null,
          paymentTraceId: input.paymentTraceId ?? null,
        },
        body: req.body,
      };
      const repo = new PostgresRepository(deps.db, { tenantId, access: FULL_ACCESS, baseUrl: fhirBase(req) }, { observer: deps.observer });
      try {
        const answer = await handleOnce(repo, event, async (tx): Promise<Handled> => {
          const result = await applyPatientPayment(tx, input);
          if (result.ok && result.value.status === 'unmatched') {
            // Kept for an operator (GET /admin/unmatched-payments), answered as the seed says: 404.
            return { status: 'unmatched', answer: cairError.fromRefusal(refuse('not-found', `Claim not found for billId: ${input.billId}`, 'billId'), input.billId) };
          }
          const answer: StoredAnswer = result.ok ? { status: 200, body: success(result.value as AppliedPaymentOutcome) } : cairError.fromRefusal(result, input.billId);
          return { status: result.ok ? 'processed' : result.code === 'not-found' ? 'unmatched' : 'refused', answer };
        });
        res.status(answer.status).json(answer.body);
      } catch (err) {
        req.log?.error({ err, billId: input.billId }, 'patient payment failed; rolled back');
        const failure = cairError.fromException(err, String(req.id));
        // The failure is journalled on its own, after the rollback: the event is never lost.
        await recordAlone(deps.db, event, { status: 'failed', answer: failure, error: (err as Error)?.message ?? String(err) }, (journalErr) =>
          req.log?.error({ err: journalErr }, 'could not journal the failed event'),
        );
        send(res, failure);
      }
    },
  );

  // Unreadable bodies (malformed JSON, too large) and failures before the handler, in the contract's shapes.
  routes.use(PATIENT_PAYMENT_PATH, (err: { status?: number; type?: string; message?: string }, req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.parse.failed') {
      send(res, cairError.invalid([{ path: [], message: `Malformed JSON: ${err.message}` }]));
    } else if (err.type === 'entity.too.large') {
      send(res, cairError.invalid([{ path: [], message: 'The request body is too large (at most 64 KiB)' }], 413));
    } else if (err.status !== undefined && err.status >= 400 && err.status < 500) {
      send(res, cairError.invalid([{ path: [], message: err.message ?? 'Unreadable request body' }], err.status === 413 ? 413 : 400));
    } else {
      req.log?.error({ err }, 'patient payment webhook failed');
      send(res, cairError.fromException(err, String(req.id)));
    }
  });
  return routes;
}

function toInput(body: PatientPaymentBody): PatientPaymentInput {
  return {
    source: SOURCE,
    whenClaimUnknown: 'hold-for-operator',
    billId: body.billId,
    amount: amount(body.paymentAmount, body.currency ?? CURRENCY),
    // Cair is USD by contract unless the body names its currency; billing refuses another than the tenant's books.
    currency: body.currency ?? CURRENCY,
    ...(body.paymentDate != null && { paymentDate: isoDatePart(body.paymentDate)! }),
    ...(body.paymentMethod != null && { paymentMethod: body.paymentMethod }),
    ...(body.paymentTraceId != null && { paymentTraceId: body.paymentTraceId }),
  };
}

/** Amounts as JSON numbers (exact: see billing/money.ts); excessAmount only when there is an excess. */
function success(o: AppliedPaymentOutcome): PatientPaymentSuccess {
  return {
    success: true,
    message: MESSAGES[o.status],
    data: {
      claimId: o.claimId,
      claimLifecycleId: o.claimLifecycleId,
      amountSetOnClaim: toJsonNumber(o.amountSetOnClaim),
      ...(o.excessAmount.gt(0) && { excessAmount: toJsonNumber(o.excessAmount) }),
    },
  };
}

function send(res: Response, e: CairError): void {
  if ('retryAfterSeconds' in e) res.set('Retry-After', String(e.retryAfterSeconds));
  res.status(e.status).json(e.body);
}
