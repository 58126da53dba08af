import type { Claim, ClaimResponse, Coverage, Patient } from '@medplum/fhirtypes';
import { amount } from '../../billing/index.ts';
import type { PayerDecisionInput } from '../../billing/index.ts';
import { ADJUDICATION, CURACEL, ICD10, PAS_REVIEW_ACTION, REVIEW_ACTION_DISPLAY, X12_306 } from '../../formats/curacel.ts';
import type { PreAuthorizationDecision, ReviewActionCode } from '../../formats/curacel.ts';
import type { CuracelSource } from './options.ts';
import { CLAIM_TYPE, money } from './vetting.ts';

/**
 * A pre-authorization decision (seed 003, research §3 and §5) as a Da Vinci PAS-style
 * ClaimResponse (use preauthorization, outcome complete, the reviewAction extension with the X12
 * 306 code on the header adjudication) answering a preauthorization Claim, found by `ref` or
 * created from the decision (diagnoses, services, the enrollee, floating or not, the HMO).
 */
const category = (code: string) => ({ coding: [{ system: ADJUDICATION, code }] });

export function reviewActionOf(d: PreAuthorizationDecision): ReviewActionCode {
  if (/^declined$/i.test(d.status)) return 'A3';
  return amount(d.pa_approved_amount).lt(amount(d.pa_total_amount)) ? 'A2' : 'A1';
}

export function preAuthorizationInput(d: PreAuthorizationDecision, source: CuracelSource): PayerDecisionInput {
  const cur = source.currency;
  const floating = d.floating_enrollee ?? undefined;
  const insuranceNo = floating ? floating.insurance_no : d.enrollee_insurance_no;
  const code = reviewActionOf(d);
  const hmo = { system: CURACEL.hmoCodeSystem, value: d.hmo.code };
  const patient: Patient = {
    resourceType: 'Patient',
    ...(insuranceNo && { identifier: [{ system: CURACEL.insuranceNoSystem, value: insuranceNo }] }),
    ...(floating
      ? {
          name: [{ ...(floating.last_name && { family: floating.last_name }), ...(floating.first_name && { given: [floating.first_name] }) }],
          ...(floating.sex && { gender: floating.sex === 'M' ? 'male' : 'female' }),
        }
      : d.enrollee_full_name ? { name: [{ text: d.enrollee_full_name }] } : {}),
  };
  return {
    claimLookup: { system: source.claimIdentifierSystem, value: d.ref },
    responseIdentifier: { system: CURACEL.paIdSystem, value: d.id_from_insurer },
    decidedAt: d.closed_at,
    final: true,
    insurer: { identifier: hmo, resource: { resourceType: 'Organization', identifier: [hmo], name: d.hmo.name } },
    // A floating enrollee without an insurance number is nobody we could find again: a new Patient.
    patient: { identifier: { system: CURACEL.insuranceNoSystem, value: insuranceNo ?? '' }, resource: patient },
    coverage: ({ patient: beneficiary, insurer }) => ({
      identifier: { system: CURACEL.insuranceNoSystem, value: insuranceNo ?? '' },
      resource: {
        resourceType: 'Coverage',
        ...(insuranceNo && { identifier: [{ system: CURACEL.insuranceNoSystem, value: insuranceNo }], subscriberId: insuranceNo }),
        ...(floating && { extension: [{ url: CURACEL.floatingEnrollee, valueBoolean: true }] }),
        status: 'active',
        beneficiary,
        payor: [insurer],
      } satisfies Coverage,
    }),
    claim: ({ patient: p, coverage, insurer }): Claim => ({
      resourceType: 'Claim',
      identifier: [{ system: source.claimIdentifierSystem, value: d.ref }],
      status: 'active',
      type: CLAIM_TYPE,
      use: 'preauthorization',
      patient: p,
      created: d.created_at,
      insurer,
      // The decision goes to the provider that asked; it does not name it.
      provider: { display: 'the requesting provider (not named in the decision)' },
      priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
      insurance: [{ sequence: 1, focal: true, coverage: coverage! }],
      diagnosis: Object.entries(d.diagnoses).map(([icd, name], i) => ({
        sequence: i + 1,
        diagnosisCodeableConcept: { coding: [{ system: ICD10, code: icd, display: name }] },
      })),
      item: d.services.map((name, i) => ({ sequence: i + 1, productOrService: { text: name } })),
      total: money(d.pa_total_amount, cur),
    }),
    response: ({ patient: p, insurer, claim }): ClaimResponse => ({
      resourceType: 'ClaimResponse',
      ...(d.opened_at && { extension: [{ url: CURACEL.reviewOpenedAt, valueDateTime: d.opened_at }] }),
      status: 'active',
      type: CLAIM_TYPE,
      use: 'preauthorization',
      patient: p,
      created: d.closed_at,
      insurer,
      request: claim,
      outcome: 'complete',
      disposition: d.status,
      ...(d.code !== null && { preAuthRef: d.code }),
      adjudication: [
        {
          extension: [
            {
              url: PAS_REVIEW_ACTION,
              extension: [
                { url: 'code', valueCodeableConcept: { coding: [{ system: X12_306, code, display: REVIEW_ACTION_DISPLAY[code] }] } },
                ...(d.reject_reason ? [{ url: 'reasonCode', valueCodeableConcept: { text: d.reject_reason } }] : []),
              ],
            },
          ],
          category: category('submitted'),
          amount: money(d.pa_total_amount, cur),
        },
      ],
      total: [
        { category: category('submitted'), amount: money(d.pa_total_amount, cur) },
        { category: category('benefit'), amount: money(d.pa_approved_amount, cur) },
      ],
      ...(d.reject_reason && { processNote: [{ number: 1, type: 'display', text: d.reject_reason }] }),
    }),
  };
}
