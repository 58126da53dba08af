import { Operator } from '@medplum/core';
import type { Claim, ClaimResponse } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../../fhir/repository.ts';
import { CURACEL, ICD10 } from '../../formats/curacel.ts';
import type { FormatContext, PayloadFormat } from './format.ts';
import { adjudicationOf, extensionOf, identifierIn, numberish, postJson, viewOf } from './curacel-fhir.ts';
import type { ClaimView } from './curacel-fhir.ts';

/**
 * `claims-vetting`: Curacel's claim webhooks (shared/seeds/001), rendered from FHIR. A ClaimResponse
 * (use claim) with a final outcome (complete or partial) is a `claim.vetted`; when that version is
 * the one that gives the last claim of its pile (claim-pile-id) a final response, the same
 * notification then carries `claim.pile.vetting_done` for every claim of the pile, one request after
 * the other, as the platform sends them (and as the worker sends one notification's requests). claim.vetted quotes every value, as the seed's page shows;
 * the pile event sends numbers.
 */
const FINAL = new Set(['complete', 'partial']);
const MAX_PILE = 1000;
type Quote = (v: number | string | null | undefined) => number | string | null;
const quoted: Quote = (v) => (v === undefined || v === null ? null : String(v));
const bare: Quote = (v) => (v === undefined || v === null ? null : typeof v === 'number' ? v : numberish(v));

export const claimsVettingFormat: PayloadFormat = {
  code: 'claims-vetting',
  signatureScheme: 'x-curacel-signature',
  needsResource: () => true,
  async render({ type, event }, ctx) {
    if (type !== 'event-notification' || event?.resource?.resourceType !== 'ClaimResponse') return [];
    const response = event.resource as ClaimResponse;
    if (!isFinal(response)) return [];
    const requests = [postJson(ctx, { event: 'claim.vetted', data: vettedData(await viewOf(ctx.repository, response)) })];
    for (const member of await completedPile(ctx, response)) {
      requests.push(postJson(ctx, { event: 'claim.pile.vetting_done', data: pileData(await viewOf(ctx.repository, member)) }));
    }
    return requests;
  },
};

const isFinal = (r: ClaimResponse | undefined): r is ClaimResponse => r?.use === 'claim' && r.status === 'active' && FINAL.has(r.outcome ?? '');

/**
 * The pile's responses, in order, when this version completes it. Rendering runs later than the
 * write (the worker may be behind), so "complete" is judged as of this version, from history, not
 * from what is current: each response's final since the start of its current run of final versions;
 * the pile completes with the one whose run started last (ties: the greater id), and only that
 * version sends the pile. A claim of the pile without a final response yet: not complete.
 */
async function completedPile(ctx: FormatContext, response: ClaimResponse): Promise<ClaimResponse[]> {
  const pile = extensionOf(response, CURACEL.pileId)?.valueString;
  if (!pile) return [];
  const repo = ctx.repository;
  const version = Number(response.meta?.versionId ?? '1');
  if (version > 1 && isFinal(await readVersion(repo, response.id!, version - 1))) return [];
  const [claims, responses] = await Promise.all([search<Claim>(repo, 'Claim', pile), search<ClaimResponse>(repo, 'ClaimResponse', pile)]);
  const byClaim = new Map(responses.filter(isFinal).map((r) => [r.request?.reference, r]));
  const members = claims.map((c) => byClaim.get(`Claim/${c.id}`));
  if (members.length === 0 || members.some((m) => m === undefined)) return [];
  const mine = Date.parse(response.meta?.lastUpdated ?? '');
  const later = (t: number, m: ClaimResponse): boolean => t > mine || (t === mine && m.id! > response.id!);
  for (const m of members as ClaimResponse[]) {
    if (m.id === response.id) continue;
    // Current and final since before this version: no history needed. Else, when did its run start?
    if (later(Date.parse(m.meta?.lastUpdated ?? ''), m) && later(await finalSince(repo, m), m)) return [];
  }
  return (members as ClaimResponse[]).sort((a, b) => (a.created ?? '').localeCompare(b.created ?? '') || platformId(a).localeCompare(platformId(b), 'en', { numeric: true }));
}

const readVersion = (repo: PostgresRepository, id: string, v: number): Promise<ClaimResponse | undefined> =>
  repo.readVersion<ClaimResponse>('ClaimResponse', id, String(v)).catch(() => undefined);

/** When the current run of final versions of `r` (final now) began. */
async function finalSince(repo: PostgresRepository, r: ClaimResponse): Promise<number> {
  let first = r;
  for (let v = Number(r.meta?.versionId ?? '1') - 1; v >= 1; v--) {
    const before = await readVersion(repo, r.id!, v);
    if (!isFinal(before)) break;
    first = before;
  }
  return Date.parse(first.meta?.lastUpdated ?? '');
}

async function search<T extends Claim | ClaimResponse>(repo: PostgresRepository, type: T['resourceType'], pile: string): Promise<T[]> {
  return repo.searchResources<T>({ resourceType: type, filters: [{ code: 'pile', operator: Operator.EQUALS, value: pile.replace(/[\\,|$]/g, (c) => `\\${c}`) }], count: MAX_PILE });
}

const platformId = (r: ClaimResponse): string => identifierIn(r.identifier, CURACEL.claimIdSystem) ?? r.id!;

/** 1 approved, 0 rejected, null pending: the decision reason, else what the outcome says. */
function approvalOf(adjudication: { reason?: { coding?: { system?: string; code?: string }[] } } | undefined, outcome?: string): 0 | 1 | null {
  const code = adjudication?.reason?.coding?.find((c) => c.system === CURACEL.decisionSystem)?.code;
  if (code === 'approved') return 1;
  if (code === 'rejected') return 0;
  if (code === 'pending') return null;
  return outcome === 'complete' || outcome === 'partial' ? 1 : null;
}

const STATUS = { 1: 'APPROVED', 0: 'REJECTED' } as const;

function common(v: ClaimView, q: Quote) {
  const { response: r, claim } = v;
  const approval = approvalOf(adjudicationOf(r.adjudication, 'benefit'), r.outcome);
  const notes = new Map((r.processNote ?? []).map((n) => [n.number, n.text]));
  const claimItems = new Map((claim?.item ?? []).map((i) => [i.sequence, i]));
  return {
    approval,
    head: {
      id: q(platformId(r)),
      pile_id: q(extensionOf(r, CURACEL.pileId)?.valueString ?? extensionOf(claim, CURACEL.pileId)?.valueString),
      ref: claim?.identifier?.find((i) => i.system !== CURACEL.claimIdSystem)?.value ?? null,
    },
    encounterDate: claim?.billablePeriod?.start ?? claim?.created ?? null,
    approvedAmount: q(adjudicationOf(r.total, 'benefit')?.amount?.value ?? 0),
    billedAmount: q(adjudicationOf(r.total, 'submitted')?.amount?.value ?? claim?.total?.value),
    vettedAt: r.created ?? null,
    diagnoses: (claim?.diagnosis ?? []).flatMap((d) =>
      (d.diagnosisCodeableConcept?.coding ?? []).filter((c) => c.system === ICD10).slice(0, 1).map((c) => ({ name: c.display ?? null, icd_code: c.code ?? null })),
    ),
    items: (r.item ?? []).map((item) => {
      const billed = claimItems.get(item.itemSequence);
      const eligible = adjudicationOf(item.adjudication, 'eligible');
      const benefit = adjudicationOf(item.adjudication, 'benefit');
      return {
        fields: {
          ref: extensionOf(billed, CURACEL.itemRef)?.valueString ?? null,
          description: billed?.productOrService.text ?? billed?.productOrService.coding?.[0]?.display ?? null,
          unit_price_billed: q(billed?.unitPrice?.value),
          unit_price_approved: q(eligible?.amount?.value),
          qty_billed: q(billed?.quantity?.value),
          qty_approved: q(eligible?.value),
          sub_total_billed: q(adjudicationOf(item.adjudication, 'submitted')?.amount?.value ?? billed?.net?.value),
          sub_total_approved: q(benefit?.amount?.value),
          comments: (item.noteNumber ?? []).map((n) => notes.get(n)).filter((t): t is string => t !== undefined),
        },
        approval: q(approvalOf(benefit, r.outcome)),
      };
    }),
  };
}

export function vettedData(v: ClaimView) {
  const c = common(v, quoted);
  const { patient, coverage, provider, response: r } = v;
  const name = patient?.name?.[0];
  const disposition = r.disposition ?? '';
  const status = /^(PENDING|APPROVED|PARTIALLY_APPROVED|REJECTED)$/.test(disposition)
    ? disposition
    : c.approval === null ? 'PENDING' : r.outcome === 'partial' ? 'PARTIALLY_APPROVED' : STATUS[c.approval];
  return {
    ...c.head,
    encounter_date: c.encounterDate,
    provider: { id: quoted(identifierIn(provider?.identifier, CURACEL.providerIdSystem) ?? provider?.id), name: provider?.name ?? null },
    enrollee: {
      id: quoted(identifierIn(patient?.identifier, CURACEL.enrolleeIdSystem) ?? patient?.id),
      insurance_no: coverage?.subscriberId ?? identifierIn(patient?.identifier, CURACEL.insuranceNoSystem) ?? null,
      first_name: name?.given?.[0] ?? null,
      last_name: name?.family ?? null,
      status: extensionOf(coverage, CURACEL.enrolleeStatus)?.valueString ?? null,
      type: coverage?.relationship?.text ?? null,
    },
    approved_amount: c.approvedAmount,
    vetted_at: c.vettedAt,
    status,
    approval_status: quoted(c.approval),
    diagnoses: c.diagnoses,
    items: c.items.map((i) => ({ ...i.fields, status: i.approval })),
  };
}

export function pileData(v: ClaimView) {
  const c = common(v, bare);
  const { patient, provider } = v;
  return {
    ...c.head,
    provider: {
      id: bare(identifierIn(provider?.identifier, CURACEL.providerIdSystem) ?? provider?.id),
      name: provider?.name ?? null,
      code: identifierIn(provider?.identifier, CURACEL.providerCodeSystem) ?? null,
    },
    encounter_date: c.encounterDate,
    enrollee_id: bare(identifierIn(patient?.identifier, CURACEL.enrolleeIdSystem) ?? patient?.id),
    billed_amount: c.billedAmount,
    approved_amount: c.approvedAmount,
    approval_status: c.approval,
    vetted_at: c.vettedAt,
    diagnoses: c.diagnoses,
    items: c.items.map((i) => ({ ...i.fields, approval_status: i.approval })),
  };
}
