import { z } from 'zod';
import { MAX_AMOUNT, amount, bookCurrencyProblem } from '../../billing/index.ts';

/**
 * The Cair Health patient-payment webhook's body and answers (shared/seeds/000, the contract).
 * Every message here is what the sender reads in `details[].message`.
 */

/** ISO 8601 calendar date, optionally with a time and offset: 2024-01-15, 2024-01-15T10:30:00Z, 2024-01-15T10:30:00.5-05:00. */
const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/** The date part of an ISO 8601 date or date-time, if it is a real calendar date with a valid time. */
export function isoDatePart(text: string): string | undefined {
  const m = ISO_8601.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  const date = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  if (date.getUTCFullYear() !== Number(y) || date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d)) return undefined;
  if (h !== undefined && (Number(h) > 23 || Number(mi) > 59 || (s !== undefined && Number(s) > 59))) return undefined;
  return `${y}-${mo}-${d}`;
}

const DATE_MESSAGE = 'paymentDate must be an ISO 8601 date (2024-01-15) or date-time (2024-01-15T10:30:00Z)';

const typed = (name: string, type: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? `${name} is required` : `${name} must be ${type}`;

/** Optional fields also take `null`, which means absent. */
export const PatientPaymentBody = z
  .object(
    {
      billId: z
        .string({ error: typed('billId', 'a string') })
        .min(1, 'billId must not be empty')
        .refine((v) => v === '' || /\S/.test(v), 'billId must not be blank')
        .max(255, 'billId must be at most 255 characters')
        .meta({ description: 'The Elation bill.id: the value of the Claim identifier with system https://fhir.cairhealth.com/fhir/identifier/claim-id (or the tenant\'s configured system).', examples: ['12345'] }),
      paymentAmount: z
        .number({ error: typed('paymentAmount', 'a number') })
        .positive('paymentAmount must be positive')
        .refine((n) => !(n > 0) || amount(n).gt(0), 'paymentAmount must be at least 0.01 (amounts are rounded to cents)')
        .refine((n) => !amount(n).gt(MAX_AMOUNT), `paymentAmount must be at most ${MAX_AMOUNT.toFixed(2)}`)
        .meta({ description: 'The payment amount, in USD unless `currency` says otherwise. Must be a positive number; rounded half-even to the currency\'s minor unit (cents).', examples: [150.75] }),
      currency: z
        .string({ error: 'currency must be a string' })
        .refine((c) => bookCurrencyProblem(c) === undefined, 'currency must be an ISO 4217 code of at most 2 minor digits, such as USD or AUD')
        .nullish()
        .meta({
          description: "ISO 4217 code of paymentAmount; absent: USD (the contract's). It must be the tenant's book currency (else 400): amounts are never converted.",
          examples: ['USD'],
        }),
      paymentDate: z
        .string({ error: 'paymentDate must be a string' })
        .regex(ISO_8601, DATE_MESSAGE)
        .refine((s) => !ISO_8601.test(s) || isoDatePart(s) !== undefined, DATE_MESSAGE)
        .nullish()
        .meta({ description: 'ISO 8601 date or date-time; its date part (as written, not converted to UTC) is the payment date. Defaults to the current date (UTC).', examples: ['2024-01-15'] }),
      paymentMethod: z
        .string({ error: 'paymentMethod must be a string' })
        .min(1, 'paymentMethod must not be empty')
        .refine((v) => v === '' || /\S/.test(v), 'paymentMethod must not be blank')
        .max(100, 'paymentMethod must be at most 100 characters')
        .nullish()
        .meta({ description: "Payment method (e.g. 'Credit Card', 'Debit Card', 'Stripe', 'Check', 'Cash').", examples: ['Credit Card'] }),
      paymentTraceId: z
        .string({ error: 'paymentTraceId must be a string' })
        .min(1, 'paymentTraceId must not be empty')
        .refine((v) => v === '' || /\S/.test(v), 'paymentTraceId must not be blank')
        .max(255, 'paymentTraceId must be at most 255 characters')
        .nullish()
        .meta({
          description: "Stripe payment intent id or transaction id (e.g. 'pi_1234567890'). The payment's identity: sending it again updates that payment instead of adding another.",
          examples: ['pi_1234567890'],
        }),
    },
    { error: 'The request body must be a JSON object' },
  )
  .superRefine((b, ctx) => {
    // A currency without cents (JPY) rounds 0.4 to nothing: positive must hold after its own rounding.
    const currency = b.currency ?? 'USD';
    if (b.currency && bookCurrencyProblem(currency) === undefined && b.paymentAmount > 0 && !amount(b.paymentAmount, currency).gt(0)) {
      ctx.addIssue({ code: 'custom', path: ['paymentAmount'], message: `paymentAmount must be positive after rounding to the minor unit of ${currency}` });
    }
  })
  .meta({ title: 'PatientPaymentRequest', description: 'Patient payment information' });

export type PatientPaymentBody = z.infer<typeof PatientPaymentBody>;

export const PatientPaymentSuccess = z
  .object({
    success: z.literal(true).meta({ description: 'Always true for 200 responses.' }),
    message: z.string().meta({ description: 'A success message describing the result.', examples: ['Payment processed successfully'] }),
    data: z.object({
      claimId: z.string().meta({ description: 'The id of the Claim that was updated.' }),
      claimLifecycleId: z.string().meta({ description: 'The lifecycle id of the claim (its claim-lifecycle-id extension, else its id).' }),
      amountSetOnClaim: z.number().meta({ description: 'What this payment has applied to the claim lifecycle (at most the open patient responsibility).' }),
      excessAmount: z
        .number()
        .optional()
        .meta({ description: 'Only present if the payment exceeds the open patient responsibility: the excess, held as an unallocated PatientCredit.' }),
    }),
  })
  .meta({ title: 'PatientPaymentResponse' });

export type PatientPaymentSuccess = z.infer<typeof PatientPaymentSuccess>;

export const InvalidRequestBody = z
  .object({
    error: z.literal('Invalid request body'),
    details: z.array(
      z.object({
        path: z.array(z.union([z.string(), z.number()])).meta({ description: 'Where in the body: ["paymentAmount"]; [] for the body as a whole.' }),
        message: z.string(),
      }),
    ),
  })
  .meta({ title: 'InvalidRequestBody', examples: [{ error: 'Invalid request body', details: [{ path: ['paymentAmount'], message: 'paymentAmount must be positive' }] }] });

export const ErrorMessage = z.object({ error: z.string() }).meta({ title: 'Error' });

export const ProcessingFailure = z
  .object({ error: z.literal('Failed to process payment'), details: z.string().meta({ description: 'What went wrong.' }) })
  .meta({ title: 'ProcessingFailure' });
