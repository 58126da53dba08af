import { z } from 'zod';
import { CANONICAL_BASE } from '../profiles/constants.ts';

/**
 * Curacel Health's webhook payloads (shared/seeds/001 claim vetting, 003 pre-authorization
 * decisions) and the FHIR names we keep them under. Neutral ground: inbound/curacel/ reads these
 * shapes into FHIR, subscriptions/formats/ renders FHIR back into them, and neither may import the
 * other. Numbers arrive as JSON numbers or quoted (the claim.vetted page quotes every placeholder),
 * and are kept as their decimal text: an amount never passes through float arithmetic.
 */
const DECIMAL = /^\d{1,13}(\.\d{1,8})?$/;
/** A number or a numeric string, as the decimal text it was (JSON numbers print shortest-form). */
export const Decimal = z
  .union([z.number().finite(), z.string().trim()])
  .transform((v) => (typeof v === 'number' ? String(v) : v))
  .refine((v) => DECIMAL.test(v), 'a non-negative decimal number (at most 13 integer digits)');
export const Id = z
  .union([z.number().int().nonnegative(), z.string().trim()])
  .transform((v) => String(v))
  .refine((v) => /^\d{1,18}$/.test(v), 'a whole number');
/** 0 rejected, 1 approved, null pending (quoted or not). */
export const Approval = z
  .union([z.literal(0), z.literal(1), z.literal('0'), z.literal('1'), z.null()])
  .transform((v) => (v === null ? null : Number(v) as 0 | 1));
const DATE_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))?$/;
/** ISO 8601 as FHIR dateTime takes it (Laravel sends microseconds: 2021-09-05T00:00:00.000000Z). */
export const DateTime = z.string().refine((v) => DATE_TIME.test(v) && !Number.isNaN(Date.parse(v)), 'an ISO 8601 date-time such as 2021-09-05T00:00:00Z');
const Text = z.string().max(10_000);

const Diagnosis = z.object({ name: Text, icd_code: z.string().trim().min(1).max(20) });
const Provider = z.object({ id: Id, name: Text, code: z.string().max(200).nullish() });

const itemFields = {
  ref: z.union([z.string().max(200), z.number().int()]).nullish().transform((v) => (v === null || v === undefined ? null : String(v))),
  description: Text,
  unit_price_billed: Decimal,
  unit_price_approved: Decimal,
  qty_billed: Decimal,
  qty_approved: Decimal,
  sub_total_billed: Decimal,
  sub_total_approved: Decimal,
  comments: z.array(z.unknown()).max(1000).nullish().transform((v) => v ?? []),
};

const commonData = {
  id: Id,
  pile_id: Id.nullish().transform((v) => v ?? null),
  ref: z.string().trim().min(1).max(200).nullish().transform((v) => v ?? null),
  encounter_date: DateTime,
  approved_amount: Decimal,
  vetted_at: DateTime,
  approval_status: Approval,
  diagnoses: z.array(Diagnosis).max(500).nullish().transform((v) => v ?? []),
};

export const ClaimVetted = z.object({
  event: z.literal('claim.vetted'),
  data: z.object({
    ...commonData,
    provider: Provider,
    enrollee: z.object({
      id: Id,
      insurance_no: z.string().max(200).nullish(),
      first_name: z.string().max(200).nullish(),
      last_name: z.string().max(200).nullish(),
      status: z.string().max(100).nullish(),
      type: z.string().max(100).nullish(),
    }),
    status: z.string().max(100).nullish(),
    items: z.array(z.object({ ...itemFields, status: Approval })).max(1000),
  }),
});

export const ClaimPileVettingDone = z.object({
  event: z.literal('claim.pile.vetting_done'),
  data: z.object({
    ...commonData,
    provider: Provider,
    enrollee_id: Id,
    billed_amount: Decimal,
    items: z.array(z.object({ ...itemFields, approval_status: Approval })).max(1000),
  }),
});

export const VETTING_EVENTS = ['claim.vetted', 'claim.pile.vetting_done'] as const;
export const VettingEvent = z.discriminatedUnion('event', [ClaimVetted, ClaimPileVettingDone], {
  error: `event must be one of: ${VETTING_EVENTS.join(', ')}`,
});
export type VettingEvent = z.output<typeof VettingEvent>;
export type ClaimVetted = z.output<typeof ClaimVetted>;
export type ClaimPileVettingDone = z.output<typeof ClaimPileVettingDone>;

/** The PA decision has no envelope; `status` comes as Approved / Declined in any case. */
export const PreAuthorizationDecision = z.object({
  status: z.string().refine((s) => /^(approved|declined)$/i.test(s), 'Approved or Declined'),
  id_from_insurer: z.union([z.string().trim().min(1).max(200), z.number().int()]).transform(String),
  ref: z.string().trim().min(1).max(200),
  pa_total_amount: Decimal,
  pa_approved_amount: Decimal,
  code: z.string().max(200).nullish().transform((v) => v ?? null),
  created_at: DateTime,
  opened_at: DateTime.nullish().transform((v) => v ?? null),
  closed_at: DateTime,
  diagnoses: z.record(z.string().trim().min(1).max(20), Text).nullish().transform((v) => v ?? {}),
  services: z.array(Text).max(1000).nullish().transform((v) => v ?? []),
  hmo: z.object({ name: Text, code: z.string().trim().min(1).max(200) }),
  floating_enrollee: z
    .object({
      insurance_no: z.string().max(200).nullish(),
      first_name: z.string().max(200).nullish(),
      last_name: z.string().max(200).nullish(),
      sex: z.enum(['M', 'F']).nullish(),
    })
    .nullish(),
  enrollee_insurance_no: z.string().max(200).nullish(),
  enrollee_full_name: z.string().max(400).nullish(),
  reject_reason: z.string().max(10_000).nullish(),
});
export type PreAuthorizationDecision = z.output<typeof PreAuthorizationDecision>;

/** Where the FHIR model keeps what has no element of its own. */
const SD = `${CANONICAL_BASE}/StructureDefinition`;
const SID = `${CANONICAL_BASE}/sid`;
export const CURACEL = {
  /** ClaimResponse.identifier: the platform's claim id (data.id). */
  claimIdSystem: `${SID}/curacel-claim-id`,
  providerIdSystem: `${SID}/curacel-provider-id`,
  providerCodeSystem: `${SID}/curacel-provider-code`,
  enrolleeIdSystem: `${SID}/curacel-enrollee-id`,
  insuranceNoSystem: `${SID}/curacel-insurance-no`,
  hmoCodeSystem: `${SID}/curacel-hmo-code`,
  /** ClaimResponse.identifier of a PA decision: the insurer's id of the request. */
  paIdSystem: `${SID}/curacel-pa-id-from-insurer`,
  /** The webhook source's own Organization (the HMO behind a vetting source). */
  webhookSourceSystem: `${SID}/webhook-source`,
  /** On Claim and ClaimResponse, valueString: the pile (batch) a claim was vetted in. */
  pileId: `${SD}/claim-pile-id`,
  /** On Claim.item, valueString: the item's id on the sender's system. */
  itemRef: `${SD}/claim-item-ref`,
  /** On ClaimResponse, valueBoolean: the adjudication is final (the pile's vetting is done). */
  adjudicationFinal: `${SD}/adjudication-final`,
  /** On ClaimResponse, valueDateTime: when the reviewer opened the request. */
  reviewOpenedAt: `${SD}/review-opened-at`,
  /** On Coverage, valueBoolean: an enrollee not (yet) registered with the platform. */
  floatingEnrollee: `${SD}/floating-enrollee`,
  /** On Coverage, valueString: the enrollee's status on the platform. */
  enrolleeStatus: `${SD}/enrollee-status`,
  /** Adjudication reason: the reviewer's decision on a claim or an item. */
  decisionSystem: `${CANONICAL_BASE}/CodeSystem/vetting-decision`,
} as const;

export const ADJUDICATION = 'http://terminology.hl7.org/CodeSystem/adjudication';
export const ICD10 = 'http://hl7.org/fhir/sid/icd-10';
/** Da Vinci PAS (research §5). */
export const PAS_REVIEW_ACTION = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewAction';
export const X12_306 = 'https://codesystem.x12.org/005010/306';
export const REVIEW_ACTION_DISPLAY = { A1: 'Certified in total', A2: 'Certified - partial', A3: 'Not Certified' } as const;
export type ReviewActionCode = keyof typeof REVIEW_ACTION_DISPLAY;
