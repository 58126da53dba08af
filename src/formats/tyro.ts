import { Decimal } from 'decimal.js';
import { z } from 'zod';

/**
 * Tyro Health (formerly Medipass) health-fund invoice webhooks (shared/seeds/004; research
 * senders-and-standards.md §4), the wire shape both directions share: inbound/tyro reads it,
 * subscriptions/formats/tyro renders it. Imports nothing of ours, so either side may use it.
 * Tyro publishes no sample body: the body is the transaction, bare or wrapped as
 * `{event, transaction}`; unknown fields are kept in the journal and ignored here. Amounts follow
 * the sender's convention: integer cents (`amountGap: 2000`) with a currency-formatted twin
 * (`amountGapString: "$20.00"`); either is accepted, both must agree, a float never is.
 */
export const TYRO_EVENTS = [
  'healthFundApprovedInvoice',
  'healthFundPaidInvoice',
  'healthFundRejectedInvoice',
  'invoiceCompleted',
  'memberApprovedInvoice',
  'memberRejectedInvoice',
  'invoiceCancelled',
  'medipassAutoCancelledInvoice',
  'medipassPaidInvoice',
  'invoiceCreated',
] as const;
export type TyroEvent = (typeof TYRO_EVENTS)[number];

/** The events a `tyro` Subscription sends (the four). */
export const TYRO_OUTBOUND_EVENTS = ['healthFundApprovedInvoice', 'healthFundRejectedInvoice', 'healthFundPaidInvoice', 'invoiceCompleted'] as const;

/** The amounts we read, each with its `…String` twin. */
export const AMOUNT_FIELDS = ['amountFee', 'amountExpectedBenefit', 'amountActualBenefit', 'amountGap'] as const;
export type AmountField = (typeof AMOUNT_FIELDS)[number];

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;
const MONEY_TEXT = /^\$?(\d{1,3}(,\d{3})+|\d{1,13})(\.\d{1,2})?$/;
const MAX_CENTS = 999_999_999_999_99;

const lower = <T extends readonly [string, ...string[]]>(values: T) =>
  z.preprocess((v) => (typeof v === 'string' ? v.trim().toLowerCase() : v), z.enum(values));

const cents = z.number().int('integer cents').min(0).max(MAX_CENTS);
const moneyText = z.string().trim().regex(MONEY_TEXT, 'a currency amount such as "$80.00"');

const amountShape = Object.fromEntries(AMOUNT_FIELDS.flatMap((f) => [[f, cents.nullish()], [`${f}String`, moneyText.nullish()]])) as Record<
  AmountField | `${AmountField}String`,
  z.ZodOptional<z.ZodNullable<z.ZodNumber>> | z.ZodOptional<z.ZodNullable<z.ZodString>>
>;

const Text = (max: number) => z.string().trim().min(1).max(max);

export const ClaimItem = z.looseObject({
  itemCode: Text(64).nullish(),
  status: Text(64).nullish(),
  statusDescription: Text(500).nullish(),
  gatewayCode: Text(32).nullish(),
  ...amountShape,
});

export const TyroClaim = z.looseObject({
  status: lower(['pending', 'under-review', 'approved', 'rejected']).nullish(),
  statusDescription: Text(500).nullish(),
  gatewayCode: Text(32).nullish(),
  ...amountShape,
  claimItems: z.array(ClaimItem).max(200).default([]),
});

export const Funder = z.union([Text(64), z.looseObject({ code: Text(64).nullish(), name: Text(200).nullish() })]);

export const TyroTransaction = z
  .looseObject({
    _id: Text(64).regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and -').optional(),
    id: Text(64).regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and -').optional(),
    invoiceReference: Text(64),
    businessStatus: lower(['completed', 'outstanding', 'declined', 'cancelled']).nullish(),
    created: z.string().regex(ISO_INSTANT, 'an ISO date-time').nullish(),
    modified: z.string().regex(ISO_INSTANT, 'an ISO date-time'),
    currencyCode: z.string().regex(/^[A-Za-z]{3}$/, 'a three-letter currency code').nullish(),
    funder: Funder.nullish(),
    claims: z.array(TyroClaim).max(50).default([]),
  })
  .refine((t) => t._id !== undefined || t.id !== undefined, { message: 'the transaction has no _id or id', path: ['_id'] })
  .refine((t) => t._id === undefined || t.id === undefined || t._id === t.id, { message: '_id and id differ', path: ['id'] });
export type TyroTransaction = z.output<typeof TyroTransaction>;
export type TyroClaim = z.output<typeof TyroClaim>;
export type TyroClaimItem = z.output<typeof ClaimItem>;

/** A body: `{event, transaction}`, or the bare transaction (its event then named by `?event=`). */
export const TyroBody = z.union([
  z.looseObject({ event: z.enum(TYRO_EVENTS), transaction: TyroTransaction }),
  TyroTransaction,
]);

export const transactionIdOf = (t: TyroTransaction): string => (t._id ?? t.id)!;

/**
 * A cents/string pair as exact decimal text with two places ("80.00"), or undefined when neither
 * is given; a pair that disagrees is an error (string), never a guess.
 */
export function amountOf(record: Record<string, unknown>, field: AmountField): string | undefined | { error: string } {
  const c = record[field];
  const s = record[`${field}String`];
  const fromCents = typeof c === 'number' ? new Decimal(c).div(100) : undefined;
  const fromText = typeof s === 'string' ? new Decimal(s.replace(/[$,\s]/g, '')) : undefined;
  if (fromCents && fromText && !fromCents.eq(fromText)) return { error: `${field} (${c}) and ${field}String (${s}) disagree` };
  return (fromCents ?? fromText)?.toFixed(2);
}

/** Integer cents and the `$80.00` twin of a decimal amount text. */
export function amountFields(field: AmountField, value: string): Record<string, number | string> {
  const d = new Decimal(value);
  const whole = d.toFixed(2).split('.');
  return { [field]: d.times(100).toNumber(), [`${field}String`]: `$${Number(whole[0]).toLocaleString('en-US')}.${whole[1]}` };
}

/** The signing input: the X-Sender-Timestamp value exactly as sent, then the body bytes, no delimiter. */
export const signedMessage = (timestamp: string, body: Buffer | string): Buffer[] => [Buffer.from(timestamp, 'utf8'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')];
