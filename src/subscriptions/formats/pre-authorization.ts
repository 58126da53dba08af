import type { ClaimResponse, Extension } from '@medplum/fhirtypes';
import { CURACEL, ICD10, PAS_REVIEW_ACTION, X12_306 } from '../../formats/curacel.ts';
import type { PayloadFormat } from './format.ts';
import { adjudicationOf, extensionOf, identifierIn, postJson, viewOf } from './curacel-fhir.ts';
import type { ClaimView } from './curacel-fhir.ts';

/**
 * `pre-authorization`: Curacel's PA decision webhook (shared/seeds/003), rendered from FHIR. A
 * ClaimResponse (use preauthorization, outcome complete) whose header adjudication carries the PAS
 * reviewAction A1 or A2 (Approved) or A3 (Declined) is one payload; pended (A4) or undecided
 * responses are no event of this webhook.
 */
const DECIDED = new Set(['A1', 'A2', 'A3']);

export const preAuthorizationFormat: PayloadFormat = {
  code: 'pre-authorization',
  signatureScheme: 'x-curacel-signature',
  needsResource: () => true,
  async render({ type, event }, ctx) {
    if (type !== 'event-notification' || event?.resource?.resourceType !== 'ClaimResponse') return [];
    const r = event.resource as ClaimResponse;
    const action = reviewActionOf(r);
    if (r.use !== 'preauthorization' || r.status !== 'active' || r.outcome !== 'complete' || !action || !DECIDED.has(action.code)) return [];
    return [postJson(ctx, decisionPayload(await viewOf(ctx.repository, r), action))];
  },
};

function reviewActionOf(r: ClaimResponse): { code: string; reason?: string } | undefined {
  const ext: Extension | undefined = (r.adjudication ?? []).flatMap((a) => a.extension ?? []).find((e) => e.url === PAS_REVIEW_ACTION);
  const code = ext?.extension?.find((e) => e.url === 'code')?.valueCodeableConcept?.coding?.find((c) => c.system === X12_306)?.code;
  if (!code) return undefined;
  const reason = ext?.extension?.find((e) => e.url === 'reasonCode')?.valueCodeableConcept;
  return { code, reason: reason?.text ?? reason?.coding?.[0]?.display };
}

export function decisionPayload(v: ClaimView, action: { code: string; reason?: string }) {
  const { response: r, claim, patient, coverage, insurer } = v;
  const declined = action.code === 'A3';
  const floating = extensionOf(coverage, CURACEL.floatingEnrollee)?.valueBoolean === true;
  const name = patient?.name?.[0];
  const insuranceNo = coverage?.subscriberId ?? identifierIn(patient?.identifier, CURACEL.insuranceNoSystem) ?? null;
  const status = /^(approved|declined)$/i.test(r.disposition ?? '') && /^declined$/i.test(r.disposition!) === declined ? r.disposition! : declined ? 'Declined' : 'Approved';
  return {
    status,
    id_from_insurer: identifierIn(r.identifier, CURACEL.paIdSystem) ?? r.id,
    ref: claim?.identifier?.[0]?.value ?? claim?.id ?? null,
    pa_total_amount: adjudicationOf(r.total, 'submitted')?.amount?.value ?? claim?.total?.value ?? null,
    pa_approved_amount: adjudicationOf(r.total, 'benefit')?.amount?.value ?? 0,
    code: r.preAuthRef ?? null,
    created_at: claim?.created ?? null,
    opened_at: extensionOf(r, CURACEL.reviewOpenedAt)?.valueDateTime ?? null,
    closed_at: r.created ?? null,
    diagnoses: Object.fromEntries(
      (claim?.diagnosis ?? []).flatMap((d) => (d.diagnosisCodeableConcept?.coding ?? []).filter((c) => c.system === ICD10 && c.code).slice(0, 1).map((c) => [c.code!, c.display ?? ''])),
    ),
    services: (claim?.item ?? []).map((i) => i.productOrService.text ?? i.productOrService.coding?.[0]?.display ?? ''),
    hmo: { name: insurer?.name ?? null, code: identifierIn(insurer?.identifier, CURACEL.hmoCodeSystem) ?? insurer?.id ?? null },
    ...(floating
      ? {
          floating_enrollee: {
            ...(insuranceNo && { insurance_no: insuranceNo }),
            first_name: name?.given?.[0] ?? null,
            last_name: name?.family ?? null,
            ...(patient?.gender && { sex: patient.gender === 'male' ? 'M' : patient.gender === 'female' ? 'F' : null }),
          },
        }
      : {
          enrollee_insurance_no: insuranceNo,
          enrollee_full_name: name?.text ?? ([...(name?.given ?? []), name?.family].filter(Boolean).join(' ') || null),
        }),
    ...(declined && { reject_reason: action.reason ?? r.processNote?.[0]?.text ?? null }),
  };
}
