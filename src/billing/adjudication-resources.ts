import { Operator } from '@medplum/core';
import type { Claim, ClaimResponse, ClaimResponseItem, Identifier, Organization, PaymentReconciliation } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { MEMBER_LIABILITY } from './claims.ts';
import { fhirMoney } from './money.ts';
import type { Amount } from './money.ts';
import { PAYMENT_TYPE_SYSTEM } from './resources.ts';

/**
 * The FHIR side of a reported adjudication: the insurer as an Organization (found by identifier,
 * created once), one ClaimResponse per response identity, and the insurer's PaymentReconciliation
 * when it paid. Amounts in the CARIN/HL7 words: `benefit` what the insurer pays, memberliability
 * what the patient owes (the gap), which is what billing's responsibilityOf reads.
 */
export const ADJUDICATION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/adjudication';
export const PAYMENT_ADJUSTMENT_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/ex-paymenttype';

export type AdjudicationCategory = 'submitted' | 'eligible' | 'benefit' | 'memberliability';

export interface AdjudicationAmount {
  category: AdjudicationCategory;
  amount: Amount;
}

export interface AdjudicatedItem {
  /** Claim.item.sequence it answers. */
  sequence: number;
  amounts: AdjudicationAmount[];
  /** The insurer's decision on the item, as text (its own status word and description). */
  decision?: string;
}

export interface InsurerPayment {
  identifier: Identifier;
  amount: Amount;
  /** YYYY-MM-DD */
  date: string;
}

export interface InsurerRef {
  identifier: Identifier;
  name: string;
}

const category = (c: AdjudicationCategory) => ({
  coding: [c === 'memberliability' ? { ...MEMBER_LIABILITY } : { system: ADJUDICATION_SYSTEM, code: c }],
});

const escape = (v: string): string => v.replace(/[\\,|$]/g, (c) => `\\${c}`);

/** The insurer's Organization: the one with its identifier, else a new one. */
export async function insurerOrganization(repo: PostgresRepository, insurer: InsurerRef): Promise<string> {
  const found = await repo.searchResources<Organization>({
    resourceType: 'Organization',
    filters: [{ code: 'identifier', operator: Operator.EQUALS, value: `${escape(insurer.identifier.system!)}|${escape(insurer.identifier.value!)}` }],
    count: 1,
  });
  if (found[0]) return found[0].id!;
  const created = await repo.createResource<Organization>({
    resourceType: 'Organization',
    identifier: [insurer.identifier],
    active: true,
    type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'ins', display: 'Insurance Company' }] }],
    name: insurer.name,
  });
  return created.id!;
}

export interface ClaimResponseInput {
  id?: string;
  identifier: Identifier;
  claim: Claim;
  insurerId: string;
  insurerName: string;
  created: string;
  outcome: ClaimResponse['outcome'];
  status: 'active' | 'cancelled';
  disposition?: string;
  items: AdjudicatedItem[];
  totals: AdjudicationAmount[];
  payment?: InsurerPayment;
  /** The book currency of every amount. */
  currency: string;
}

export function claimResponse(i: ClaimResponseInput): ClaimResponse {
  const items: ClaimResponseItem[] = i.items.map((item) => ({
    itemSequence: item.sequence,
    adjudication: item.amounts.length > 0
      ? item.amounts.map((a) => ({ category: category(a.category), ...(item.decision && { reason: { text: item.decision } }), amount: fhirMoney(a.amount, i.currency) }))
      : [{ category: category('benefit'), ...(item.decision && { reason: { text: item.decision } }) }],
  }));
  return {
    resourceType: 'ClaimResponse',
    ...(i.id && { id: i.id }),
    identifier: [i.identifier],
    status: i.status,
    type: i.claim.type,
    use: 'claim',
    patient: { reference: i.claim.patient!.reference! },
    created: i.created,
    insurer: { reference: `Organization/${i.insurerId}`, display: i.insurerName },
    request: { reference: `Claim/${i.claim.id}` },
    outcome: i.outcome,
    ...(i.disposition && { disposition: i.disposition }),
    ...(items.length > 0 && { item: items }),
    ...(i.totals.length > 0 && { total: i.totals.map((t) => ({ category: category(t.category), amount: fhirMoney(t.amount, i.currency) })) }),
    ...(i.payment && {
      payment: {
        type: { coding: [{ system: PAYMENT_ADJUSTMENT_TYPE_SYSTEM, code: 'complete', display: 'Complete' }] },
        date: i.payment.date,
        amount: fhirMoney(i.payment.amount, i.currency),
        identifier: i.payment.identifier,
      },
    }),
  };
}

/** What the insurer paid: issuer the insurer, one `payment` detail for the Claim (response: the ClaimResponse). */
export function insurerReconciliation(args: { id?: string; payment: InsurerPayment; created: string; insurerId: string; insurerName: string; claimId: string; claimResponseId: string; currency: string }): PaymentReconciliation {
  const { payment } = args;
  return {
    resourceType: 'PaymentReconciliation',
    ...(args.id && { id: args.id }),
    identifier: [payment.identifier],
    status: 'active',
    created: args.created,
    paymentIssuer: { reference: `Organization/${args.insurerId}`, display: args.insurerName },
    outcome: 'complete',
    disposition: `Paid by ${args.insurerName} for Claim/${args.claimId}`,
    paymentDate: payment.date,
    paymentAmount: fhirMoney(payment.amount, args.currency),
    paymentIdentifier: payment.identifier,
    detail: [
      {
        identifier: payment.identifier,
        type: { coding: [{ system: PAYMENT_TYPE_SYSTEM, code: 'payment', display: 'Payment' }] },
        request: { reference: `Claim/${args.claimId}` },
        response: { reference: `ClaimResponse/${args.claimResponseId}` },
        date: payment.date,
        amount: fhirMoney(payment.amount, args.currency),
      },
    ],
  };
}
