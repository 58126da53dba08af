import type { ClaimResponse, ClaimResponseItem, ClaimResponseItemAdjudication, CodeableConcept, Identifier, PaymentReconciliationDetail } from '@medplum/fhirtypes';
import { CURRENCY as X12_CURRENCY, MEMBER_LIABILITY, PAYER_CLAIM_ID_SYSTEM, PAYMENT_TRACE_ID_SYSTEM, PAYMENT_TYPE_SYSTEM, fhirMoney } from '../../billing/index.ts';
import type { Amount, ClaimAdjudicationInput, PartyInput, RemittanceInput } from '../../billing/index.ts';
import type { Adjustment, ClaimPayment, Party, ProviderAdjustment, RemittanceHeader, ServiceLine } from './model.ts';

/**
 * The 835 in FHIR R4 words (README "Payer remittances" has the table): BPR/TRN → PaymentReconciliation,
 * CLP → ClaimResponse, CAS → adjudication (group code as category, CARC as reason), SVC → item,
 * MOA/LQ → remark adjudications (RARC as reason), PLB → adjustment details.
 */

export const X12 = {
  groupCode: 'https://x12.org/codes/claim-adjustment-group-codes',
  carc: 'https://x12.org/codes/claim-adjustment-reason-codes',
  rarc: 'https://x12.org/codes/remittance-advice-remark-codes',
  claimStatus: 'https://x12.org/codes/claim-status-codes-835',
  plbReason: 'https://x12.org/codes/provider-adjustment-reason-codes',
  payerId: 'https://fhir-billing.org/fhir/identifier/x12-payer-id',
} as const;

const ADJUDICATION = 'http://terminology.hl7.org/CodeSystem/adjudication';
const NPI = 'http://hl7.org/fhir/sid/us-npi';
const TAX_ID = 'urn:oid:2.16.840.1.113883.4.4';

const STATUS_WORDS: Record<string, string> = {
  '1': 'Processed as primary', '2': 'Processed as secondary', '3': 'Processed as tertiary', '4': 'Denied',
  '19': 'Processed as primary, forwarded to additional payer(s)', '20': 'Processed as secondary, forwarded to additional payer(s)',
  '21': 'Processed as tertiary, forwarded to additional payer(s)', '22': 'Reversal of previous payment', '23': 'Not our claim, forwarded to additional payer(s)',
  '25': 'Predetermination pricing only - no payment',
};
const METHOD_WORDS: Record<string, string> = { ACH: 'ACH', CHK: 'Check', FWT: 'Federal Reserve wire transfer', BOP: 'Financial institution option', NON: 'Non-payment data' };

/** BPR02 as money to the provider: a debit (BPR03 D) is money taken back, negative. */
/** CUR02 when the 835 names its currency; otherwise USD (the 835 is a US transaction). */
export function currencyOf(h: Pick<RemittanceHeader, 'currency'>): string {
  return h.currency ?? X12_CURRENCY;
}

export function signedPayment(h: Pick<RemittanceHeader, 'paymentAmount' | 'creditDebit'>): Amount {
  return h.creditDebit === 'D' ? h.paymentAmount.negated() : h.paymentAmount;
}

export function isReversal(c: ClaimPayment): boolean {
  return c.status === '22';
}

export function remittanceInput(h: RemittanceHeader): RemittanceInput {
  const currency = currencyOf(h);
  const trace: Identifier = { system: PAYMENT_TRACE_ID_SYSTEM, value: h.traceNumber };
  const signed = signedPayment(h);
  return {
    traceNumber: h.traceNumber,
    payerId: h.payerId,
    paymentAmount: signed,
    currency,
    paymentDate: h.paymentDate,
    payer: party(h.payer, X12.payerId),
    payee: party(h.payee, X12.payerId),
    reconciliation: {
      resourceType: 'PaymentReconciliation',
      identifier: [trace, { system: X12.payerId, value: h.payerId }],
      status: 'active',
      created: new Date().toISOString(),
      outcome: 'complete',
      disposition: `Payer remittance ${h.traceNumber} (${METHOD_WORDS[h.method] ?? h.method}, BPR01 ${h.handling})`,
      paymentDate: h.paymentDate,
      paymentAmount: fhirMoney(signed, currency),
      paymentIdentifier: trace,
    },
  };
}

function party(p: Party, otherSystem: string): PartyInput {
  if (!p.id) return { name: p.name };
  const system = p.idQualifier === 'XX' ? NPI : p.idQualifier === 'FI' ? TAX_ID : `${otherSystem}${p.idQualifier ? `-${p.idQualifier.toLowerCase()}` : ''}`;
  return { name: p.name, identifier: { system, value: p.id } };
}

export function adjudicationInput(c: ClaimPayment, paymentDate: string, currency: string): ClaimAdjudicationInput {
  const identifier: Identifier[] = c.payerClaimControlNumber ? [{ system: PAYER_CLAIM_ID_SYSTEM, value: c.payerClaimControlNumber }] : [];
  const words = STATUS_WORDS[c.status] ?? `Claim status ${c.status}`;
  const response: ClaimResponse = {
    resourceType: 'ClaimResponse',
    ...(identifier.length > 0 && { identifier }),
    status: 'active',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
    use: 'claim',
    patient: {},
    // The import's time: the newest response is the one responsibility comes from (claims.responsibilityOf).
    created: new Date().toISOString(),
    insurer: {},
    outcome: c.status === '25' ? 'partial' : 'complete',
    disposition: `${words} (CLP02 ${c.status})`,
    payment: { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/ex-paymenttype', code: 'complete' }] }, date: paymentDate, amount: fhirMoney(c.paid, currency) },
    total: [
      { category: code(ADJUDICATION, 'submitted'), amount: fhirMoney(c.charge, currency) },
      { category: code(ADJUDICATION, 'benefit'), amount: fhirMoney(c.paid, currency) },
      { category: code(MEMBER_LIABILITY.system, MEMBER_LIABILITY.code), amount: fhirMoney(c.patientResponsibility, currency) },
    ],
    ...(c.adjustments.length + c.remarks.length > 0 && { adjudication: [...c.adjustments.map((a) => adjustment(a, currency)), ...c.remarks.map(remark)] }),
    ...(c.services.length > 0 && { item: c.services.map((sv, i) => item(sv, i, currency)) }),
  };
  const { request: _r, patient: _p, insurer: _i, ...template } = response;
  return { billId: c.patientControlNumber, ...(c.payerClaimControlNumber && { payerClaimId: c.payerClaimControlNumber }), statusCode: c.status, paid: c.paid, reversal: isReversal(c), response: template };
}

function item(s: ServiceLine, index: number, currency: string): ClaimResponseItem {
  const sequence = s.lineControl && /^[1-9]\d{0,8}$/.test(s.lineControl) ? Number(s.lineControl) : index + 1;
  const procedure = [s.procedure.qualifier, s.procedure.code, ...s.procedure.modifiers].filter(Boolean).join(':');
  return {
    itemSequence: sequence,
    adjudication: [
      { category: code(ADJUDICATION, 'submitted'), reason: { text: `SVC01 ${procedure}` }, amount: fhirMoney(s.charge, currency), ...(s.units && /^\d+(\.\d+)?$/.test(s.units) && { value: Number(s.units) }) },
      { category: code(ADJUDICATION, 'benefit'), amount: fhirMoney(s.paid, currency) },
      ...s.adjustments.map((a) => adjustment(a, currency)),
      ...s.remarks.map(remark),
    ],
  };
}

function adjustment(a: Adjustment, currency: string): ClaimResponseItemAdjudication {
  return {
    category: code(X12.groupCode, a.group),
    reason: code(X12.carc, a.reason),
    amount: fhirMoney(a.amount, currency),
    ...(a.quantity && /^-?\d+(\.\d+)?$/.test(a.quantity) && { value: Number(a.quantity) }),
  };
}

function remark(code_: string): ClaimResponseItemAdjudication {
  return { category: { text: 'remark' }, reason: code(X12.rarc, code_) };
}

/** PLB: positive amounts were withheld from the payment, so the detail is their negative. */
export function adjustmentDetail(a: ProviderAdjustment, paymentDate: string, currency: string): PaymentReconciliationDetail {
  return {
    ...(a.reference && { identifier: { system: X12.plbReason, value: a.reference } }),
    type: { coding: [{ system: PAYMENT_TYPE_SYSTEM, code: 'adjustment', display: 'Adjustment' }], text: `PLB ${a.reason}${a.reference ? ` ${a.reference}` : ''} (provider ${a.providerId})` },
    date: a.date ?? paymentDate,
    amount: fhirMoney(a.amount.negated() as Amount, currency),
  };
}

function code(system: string, value: string): CodeableConcept {
  return { coding: [{ system, code: value }] };
}
