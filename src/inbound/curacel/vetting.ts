import type { Claim, ClaimResponse, ClaimResponseItem, ClaimResponseProcessNote, Coverage, Money, Organization } from '@medplum/fhirtypes';
import { amount, toJsonNumber } from '../../billing/index.ts';
import type { PayerDecisionInput } from '../../billing/index.ts';
import { ADJUDICATION, CURACEL, ICD10 } from '../../formats/curacel.ts';
import type { VettingEvent } from '../../formats/curacel.ts';
import type { CuracelSource } from './options.ts';

/**
 * A vetting event (claim.vetted or claim.pile.vetting_done, research §2) as FHIR: the claim as the
 * platform has it (created only when it is not here), and its ClaimResponse. The two events differ
 * in shape (an enrollee object or only its id; items' `status` or `approval_status`; no billed
 * total in claim.vetted) and mean the same; the pile event is final.
 */
export const CLAIM_TYPE = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] };
const PRIORITY = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] };
const category = (code: string) => ({ coding: [{ system: ADJUDICATION, code }] });
const DECISION = { 1: 'approved', 0: 'rejected' } as const;
const decision = (a: 0 | 1 | null) => ({ coding: [{ system: CURACEL.decisionSystem, code: a === null ? 'pending' : DECISION[a] }] });

export function money(text: string, currency: string): Money {
  return { value: toJsonNumber(amount(text)), currency: currency as Money['currency'] };
}

type Item = VettingEvent['data']['items'][number];
const itemApproval = (item: Item): 0 | 1 | null => ('status' in item ? item.status : (item as { approval_status: 0 | 1 | null }).approval_status);

export function vettingInput(e: VettingEvent, source: CuracelSource): PayerDecisionInput {
  const d = e.data;
  const cur = source.currency;
  const enrollee = e.event === 'claim.vetted' ? e.data.enrollee : { id: e.data.enrollee_id };
  const approvals = d.items.map(itemApproval);
  const billed = e.event === 'claim.pile.vetting_done' ? e.data.billed_amount : sumText(d.items.map((i) => i.sub_total_billed));
  const pile = d.pile_id === null ? [] : [{ url: CURACEL.pileId, valueString: d.pile_id }];
  const patientIds = [
    { system: CURACEL.enrolleeIdSystem, value: enrollee.id },
    ...('insurance_no' in enrollee && enrollee.insurance_no ? [{ system: CURACEL.insuranceNoSystem, value: enrollee.insurance_no }] : []),
  ];
  const named = 'first_name' in enrollee && (enrollee.first_name || enrollee.last_name);
  const notes: ClaimResponseProcessNote[] = [];
  const noteNumbers = d.items.map((item) =>
    item.comments.map((c) => {
      notes.push({ number: notes.length + 1, type: 'display', text: typeof c === 'string' ? c : JSON.stringify(c) });
      return notes.length;
    }),
  );

  return {
    ...(d.ref !== null && { claimLookup: { system: source.claimIdentifierSystem, value: d.ref } }),
    responseIdentifier: { system: CURACEL.claimIdSystem, value: d.id },
    decidedAt: d.vetted_at,
    final: e.event === 'claim.pile.vetting_done',
    insurer: sourceOrganization(source),
    provider: {
      identifier: { system: CURACEL.providerIdSystem, value: d.provider.id },
      resource: {
        resourceType: 'Organization',
        identifier: [
          { system: CURACEL.providerIdSystem, value: d.provider.id },
          ...(d.provider.code ? [{ system: CURACEL.providerCodeSystem, value: d.provider.code }] : []),
        ],
        name: d.provider.name,
      },
    },
    patient: {
      identifier: patientIds[0],
      resource: {
        resourceType: 'Patient',
        identifier: patientIds,
        ...(named && { name: [{ ...(enrollee.last_name && { family: enrollee.last_name }), ...(enrollee.first_name && { given: [enrollee.first_name] }) }] }),
      },
    },
    coverage: ({ patient, insurer }) => ({
      identifier: { system: CURACEL.enrolleeIdSystem, value: enrollee.id },
      resource: {
        resourceType: 'Coverage',
        identifier: [{ system: CURACEL.enrolleeIdSystem, value: enrollee.id }],
        status: 'active',
        beneficiary: patient,
        payor: [insurer],
        ...('insurance_no' in enrollee && enrollee.insurance_no && { subscriberId: enrollee.insurance_no }),
        ...('type' in enrollee && enrollee.type && { relationship: { text: enrollee.type } }),
        ...('status' in enrollee && enrollee.status && { extension: [{ url: CURACEL.enrolleeStatus, valueString: enrollee.status }] }),
      } satisfies Coverage,
    }),
    claim: ({ patient, coverage, insurer, provider }): Claim => ({
      resourceType: 'Claim',
      ...(pile.length && { extension: pile }),
      identifier: d.ref === null ? [] : [{ system: source.claimIdentifierSystem, value: d.ref }],
      status: 'active',
      type: CLAIM_TYPE,
      use: 'claim',
      patient,
      billablePeriod: { start: d.encounter_date },
      created: d.encounter_date,
      insurer,
      provider: provider ?? { display: d.provider.name },
      priority: PRIORITY,
      diagnosis: d.diagnoses.map((x, i) => ({ sequence: i + 1, diagnosisCodeableConcept: { coding: [{ system: ICD10, code: x.icd_code, display: x.name }] } })),
      insurance: [{ sequence: 1, focal: true, coverage: coverage! }],
      item: d.items.map((item, i) => ({
        ...(item.ref !== null && { extension: [{ url: CURACEL.itemRef, valueString: item.ref }] }),
        sequence: i + 1,
        productOrService: { text: item.description },
        quantity: { value: Number(item.qty_billed) },
        unitPrice: money(item.unit_price_billed, cur),
        net: money(item.sub_total_billed, cur),
      })),
      total: money(billed, cur),
    }),
    response: ({ patient, insurer, provider, claim }): ClaimResponse => ({
      resourceType: 'ClaimResponse',
      ...(pile.length && { extension: pile }),
      status: 'active',
      type: CLAIM_TYPE,
      use: 'claim',
      patient,
      created: d.vetted_at,
      insurer,
      ...(provider && { requestor: provider }),
      request: claim,
      ...outcomeOf(d.approval_status, approvals, e.event === 'claim.vetted' ? e.data.status : undefined),
      adjudication: [{ category: category('benefit'), reason: decision(d.approval_status), amount: money(d.approved_amount, cur) }],
      item: d.items.map(
        (item, i): ClaimResponseItem => ({
          itemSequence: i + 1,
          ...(noteNumbers[i].length && { noteNumber: noteNumbers[i] }),
          adjudication: [
            { category: category('submitted'), amount: money(item.sub_total_billed, cur) },
            { category: category('eligible'), amount: money(item.unit_price_approved, cur), value: Number(item.qty_approved) },
            { category: category('benefit'), reason: decision(approvals[i]), amount: money(item.sub_total_approved, cur) },
          ],
        }),
      ),
      total: [
        { category: category('submitted'), amount: money(billed, cur) },
        { category: category('benefit'), amount: money(d.approved_amount, cur) },
      ],
      ...(notes.length && { processNote: notes }),
    }),
  };
}

/**
 * approved / rejected are complete, pending is queued; items that disagree (some approved, some
 * rejected or pending) make it partial. The claim-level `status` string, when sent, is the disposition.
 */
function outcomeOf(claim: 0 | 1 | null, items: (0 | 1 | null)[], status: string | null | undefined): Pick<ClaimResponse, 'outcome' | 'disposition'> {
  const mixed = new Set(items).size > 1;
  const outcome = mixed && claim !== null ? 'partial' : claim === null ? 'queued' : 'complete';
  const word = mixed && claim !== null ? 'partially approved' : claim === null ? 'pending' : DECISION[claim];
  return { outcome, disposition: status ?? word };
}

/** The HMO behind a source: its own Organization, named as the source is. */
export function sourceOrganization(source: CuracelSource): { identifier: { system: string; value: string }; resource: Organization } {
  const identifier = { system: CURACEL.webhookSourceSystem, value: source.id };
  return { identifier, resource: { resourceType: 'Organization', identifier: [identifier], name: source.name } };
}

function sumText(values: string[]): string {
  return values.reduce((total, v) => total.plus(amount(v)), amount('0')).toFixed(2);
}
