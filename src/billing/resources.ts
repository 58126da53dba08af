import type { CodeableConcept, Extension, PaymentReconciliation, PaymentReconciliationDetail, Reference } from '@medplum/fhirtypes';
import { CANONICAL_BASE, EXTENSION_URLS } from '../profiles/index.ts';
import type { PatientCredit, PatientCreditAllocation, PatientCreditStatus } from '../profiles/index.ts';
import { ZERO, fhirMoney, formatMoney } from './money.ts';
import type { Amount } from './money.ts';
import type { PaymentIdentifier, PaymentInstrument } from './store.ts';

/**
 * R4 PaymentReconciliation has no `method` (R5 added it), so it travels in the R5 cross-version
 * extension (defined in fhir-profiles/ as well, so our validator checks it): a CodeableConcept with
 * the HL7 v2 table 0570 code when we recognise the sender's text, and always the text as sent.
 */
export const PAYMENT_METHOD_EXTENSION = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-PaymentReconciliation.method';
export const PAYMENT_METHOD_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v2-0570';
/** Identifier system of the processor's payment id (Cair's paymentTraceId; fhir-profiles/NamingSystem-payment-trace-id.json). */
export const PAYMENT_TRACE_ID_SYSTEM = `${CANONICAL_BASE}/identifier/payment-trace-id`;
export const PAYMENT_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/payment-type';

/** On PaymentReconciliation (fhir-profiles/): what the processor told about the card, and its settlement. */
export const PAYMENT_EXTENSIONS = Object.freeze({
  cardBrand: `${CANONICAL_BASE}/StructureDefinition/payment-card-brand`,
  cardLastFour: `${CANONICAL_BASE}/StructureDefinition/payment-card-last-four`,
  authorizationCode: `${CANONICAL_BASE}/StructureDefinition/payment-authorization-code`,
  settlementDate: `${CANONICAL_BASE}/StructureDefinition/payment-settlement-date`,
});

const METHOD_CODES: Record<string, { code: string; display: string }> = {
  cash: { code: 'CASH', display: 'Cash' },
  'credit card': { code: 'CCCA', display: 'Credit Card' },
  credit: { code: 'CCCA', display: 'Credit Card' },
  'debit card': { code: 'DEBC', display: 'Debit Card' },
  debit: { code: 'DEBC', display: 'Debit Card' },
  check: { code: 'CHCK', display: 'Check' },
  cheque: { code: 'CHCK', display: 'Check' },
  "cashier's check": { code: 'CCHK', display: "Cashier's Check" },
  'direct deposit': { code: 'DDPO', display: 'Direct Deposit' },
};

export function paymentMethodConcept(method: string): CodeableConcept {
  const known = METHOD_CODES[method.trim().toLowerCase()];
  return { ...(known && { coding: [{ system: PAYMENT_METHOD_SYSTEM, ...known }] }), text: method };
}

export interface PaymentReconciliationInput {
  id: string;
  /** FHIR dateTime the payment was first recorded. */
  created: string;
  /** YYYY-MM-DD */
  paymentDate: string;
  amount: Amount;
  /** The book currency of every amount. */
  currency: string;
  applied: Amount;
  credited: Amount;
  method: string | null;
  traceId: string | null;
  claimId: string;
  claimResponseId: string | null;
  /** The claim's patient reference: who paid. */
  patient: Reference;
  lifecycleId: string;
  /** cancelled once voided. */
  status: 'active' | 'cancelled';
  instrument: PaymentInstrument | null;
  /** The processor's own identifiers, besides the trace id. */
  identifiers: PaymentIdentifier[] | null;
  settlementDate: string | null;
  settlementFailed: boolean;
}

/**
 * One PaymentReconciliation per payment. `detail` reconciles to `paymentAmount`: a `payment` detail
 * for what was applied to the claim (request = the Claim, response = the ClaimResponse the
 * responsibility came from), and an `advance` detail ("against future claims") for the excess that
 * became a PatientCredit.
 */
export function paymentReconciliation(p: PaymentReconciliationInput): PaymentReconciliation {
  const extension: Extension[] = [{ url: EXTENSION_URLS.patientPaymentIssuer, valueReference: p.patient }];
  if (p.method) extension.push({ url: PAYMENT_METHOD_EXTENSION, valueCodeableConcept: paymentMethodConcept(p.method) });
  extension.push(...instrumentExtensions(p.instrument));
  if (p.settlementDate) extension.push({ url: PAYMENT_EXTENSIONS.settlementDate, valueDate: p.settlementDate });
  const identifier = p.traceId ? { system: PAYMENT_TRACE_ID_SYSTEM, value: p.traceId } : undefined;
  const identifiers = [...(identifier ? [identifier] : []), ...(p.identifiers ?? [])];
  const detail: PaymentReconciliationDetail[] = [
    {
      ...(identifier && { identifier }),
      type: { coding: [{ system: PAYMENT_TYPE_SYSTEM, code: 'payment', display: 'Payment' }] },
      request: { reference: `Claim/${p.claimId}` },
      ...(p.claimResponseId && { response: { reference: `ClaimResponse/${p.claimResponseId}` } }),
      date: p.paymentDate,
      amount: fhirMoney(p.applied, p.currency),
    },
  ];
  if (p.credited.gt(ZERO)) {
    detail.push({
      ...(identifier && { identifier }),
      type: { coding: [{ system: PAYMENT_TYPE_SYSTEM, code: 'advance', display: 'Advance' }] },
      date: p.paymentDate,
      amount: fhirMoney(p.credited, p.currency),
    });
  }
  let disposition = p.credited.gt(ZERO)
    ? `Applied ${formatMoney(p.applied, p.currency)} to claim lifecycle ${p.lifecycleId}; ${formatMoney(p.credited, p.currency)} held as a patient credit`
    : `Applied ${formatMoney(p.applied, p.currency)} to claim lifecycle ${p.lifecycleId}`;
  if (p.status === 'cancelled') disposition = `Voided; everything it applied or credited was given back (was: ${disposition})`;
  if (p.settlementFailed) disposition += '; the processor reported a settlement error';
  return {
    resourceType: 'PaymentReconciliation',
    id: p.id,
    extension,
    ...(identifiers.length > 0 && { identifier: identifiers }),
    status: p.status,
    created: p.created,
    // error: the processor could not settle it (the money may not arrive).
    outcome: p.settlementFailed ? 'error' : 'complete',
    disposition,
    paymentDate: p.paymentDate,
    paymentAmount: fhirMoney(p.amount, p.currency),
    ...(identifier && { paymentIdentifier: identifier }),
    detail,
  };
}

function instrumentExtensions(instrument: PaymentInstrument | null): Extension[] {
  const out: Extension[] = [];
  if (instrument?.brand) out.push({ url: PAYMENT_EXTENSIONS.cardBrand, valueString: instrument.brand });
  if (instrument?.lastFour) out.push({ url: PAYMENT_EXTENSIONS.cardLastFour, valueString: instrument.lastFour });
  if (instrument?.authorizationCode) out.push({ url: PAYMENT_EXTENSIONS.authorizationCode, valueString: instrument.authorizationCode });
  return out;
}

export interface ReversalReconciliationInput {
  id: string;
  created: string;
  kind: 'refund' | 'return' | 'chargeback';
  /** YYYY-MM-DD */
  date: string;
  amount: Amount;
  /** The book currency of every amount. */
  currency: string;
  /** Taken back from what the payment applied to the claim's lifecycle ... */
  fromClaim: Amount;
  /** ... and from its PatientCredit (balance and allocations). */
  fromCredit: Amount;
  reversalTraceId: string;
  identifiers: PaymentIdentifier[] | null;
  /** The original payment's trace id (detail.predecessor) and PaymentReconciliation. */
  originalTraceId: string;
  originalReconciliationId: string;
  claimId: string;
  patientCreditId: string | null;
  patient: Reference;
}

const REVERSAL_WORDS = { refund: 'Refund', return: 'Returned payment', chargeback: 'Chargeback' } as const;

/**
 * A refund, return or chargeback: its own PaymentReconciliation, money going back to the payer, so
 * paymentAmount and every detail amount are negative; `adjustment` details name the original
 * payment in `predecessor` (its trace id) and say where the money came back from: the claim
 * (request = the Claim) and the PatientCredit (an extension-free detail without request).
 */
export function reversalReconciliation(r: ReversalReconciliationInput): PaymentReconciliation {
  const identifier = { system: PAYMENT_TRACE_ID_SYSTEM, value: r.reversalTraceId };
  const predecessor = { system: PAYMENT_TRACE_ID_SYSTEM, value: r.originalTraceId };
  const adjustment = { coding: [{ system: PAYMENT_TYPE_SYSTEM, code: 'adjustment', display: 'Adjustment' }], text: REVERSAL_WORDS[r.kind] };
  const detail: PaymentReconciliationDetail[] = [];
  if (r.fromClaim.gt(ZERO) || r.fromCredit.isZero()) {
    detail.push({ identifier, predecessor, type: adjustment, request: { reference: `Claim/${r.claimId}` }, date: r.date, amount: fhirMoney(r.fromClaim.negated(), r.currency) });
  }
  if (r.fromCredit.gt(ZERO)) detail.push({ identifier, predecessor, type: adjustment, date: r.date, amount: fhirMoney(r.fromCredit.negated(), r.currency) });
  const from = [r.fromClaim.gt(ZERO) && `${formatMoney(r.fromClaim, r.currency)} from claim Claim/${r.claimId}`, r.fromCredit.gt(ZERO) && `${formatMoney(r.fromCredit, r.currency)} from PatientCredit/${r.patientCreditId}`].filter(Boolean);
  return {
    resourceType: 'PaymentReconciliation',
    id: r.id,
    extension: [{ url: EXTENSION_URLS.patientPaymentIssuer, valueReference: r.patient }],
    identifier: [identifier, ...(r.identifiers ?? [])],
    status: 'active',
    created: r.created,
    outcome: 'complete',
    disposition: `${REVERSAL_WORDS[r.kind]} of payment ${r.originalTraceId} (PaymentReconciliation/${r.originalReconciliationId}): ${from.join(' and ')}`,
    paymentDate: r.date,
    paymentAmount: fhirMoney(r.amount.negated(), r.currency),
    paymentIdentifier: identifier,
    detail,
  };
}

/** unallocated | partially-allocated | allocated, or reversed once nothing of it is left. */
export function creditStatus(amount: Amount, balance: Amount): PatientCreditStatus {
  if (amount.isZero()) return 'reversed';
  if (balance.eq(amount)) return 'unallocated';
  if (balance.isZero()) return 'allocated';
  return 'partially-allocated';
}

export interface PatientCreditState {
  amount: Amount;
  balance: Amount;
  allocation: PatientCreditAllocation[];
}

/** The credit with `state` written in: amount, balance, status and allocations. */
export function withCreditState(credit: PatientCredit, state: PatientCreditState, currency: string): PatientCredit {
  const { allocation: _old, ...rest } = credit;
  return {
    ...rest,
    status: creditStatus(state.amount, state.balance),
    amount: fhirMoney(state.amount, currency),
    balance: fhirMoney(state.balance, currency),
    ...(state.allocation.length > 0 && { allocation: state.allocation }),
  };
}

export function newPatientCredit(args: { id: string; patient: Reference; amount: Amount; currency: string; paymentReconciliationId: string; created: string }): PatientCredit {
  return withCreditState(
    {
      resourceType: 'PatientCredit',
      id: args.id,
      status: 'unallocated',
      patient: args.patient as PatientCredit['patient'],
      amount: fhirMoney(args.amount, args.currency),
      balance: fhirMoney(args.amount, args.currency),
      source: { reference: `PaymentReconciliation/${args.paymentReconciliationId}` },
      created: args.created,
    },
    { amount: args.amount, balance: args.amount, allocation: [] },
    args.currency,
  );
}
