import { OperationOutcomeError, Operator, getStatus } from '@medplum/core';
import type { Claim, ClaimResponse, Extension, Money } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { EXTENSION_URLS } from '../profiles/index.ts';
import { ZERO, amount, fhirMoney, sum } from './money.ts';
import type { Amount } from './money.ts';
import { BillingFailure } from './result.ts';

/** CARIN Blue Button adjudication category of what the member (patient) owes. */
export const MEMBER_LIABILITY = { system: 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication', code: 'memberliability' } as const;

/** Most claims in one lifecycle we look at (originals, corrections, resubmissions). */
const MAX_LIFECYCLE_CLAIMS = 1000;

/**
 * The live claims carrying `billId` as an identifier in `system`, newest first; claims
 * entered-in-error are not billable and are left out.
 */
export async function findClaimsByBillId(repo: PostgresRepository, system: string, billId: string): Promise<Claim[]> {
  const claims = await repo.searchResources<Claim>({
    resourceType: 'Claim',
    filters: [{ code: 'identifier', operator: Operator.EQUALS, value: `${escape(system)}|${escape(billId)}` }],
    count: MAX_LIFECYCLE_CLAIMS,
  });
  return claims.filter((c) => c.status !== 'entered-in-error').sort(newestFirst);
}

/**
 * findClaimsByBillId for many bill ids in one search (an importer's batch): each bill id's claims,
 * newest first; a bill id without any has none in the map. Should the search fill its page (it may
 * have been cut), each bill id is asked on its own instead.
 */
export async function findClaimsByBillIds(repo: PostgresRepository, system: string, billIds: string[]): Promise<Map<string, Claim[]>> {
  const found = new Map<string, Claim[]>();
  const wanted = [...new Set(billIds)];
  if (wanted.length === 0) return found;
  const claims = await repo.searchResources<Claim>({
    resourceType: 'Claim',
    filters: [{ code: 'identifier', operator: Operator.EQUALS, value: wanted.map((id) => `${escape(system)}|${escape(id)}`).join(',') }],
    count: MAX_LIFECYCLE_CLAIMS,
  });
  if (claims.length >= MAX_LIFECYCLE_CLAIMS) {
    for (const id of wanted) found.set(id, await findClaimsByBillId(repo, system, id));
    return found;
  }
  const want = new Set(wanted);
  for (const claim of claims.filter((c) => c.status !== 'entered-in-error').sort(newestFirst)) {
    // A token search matches system and value exactly, so these are the ids it was found by.
    const ids = new Set((claim.identifier ?? []).filter((i) => i.system === system && i.value !== undefined && want.has(i.value)).map((i) => i.value!));
    for (const id of ids) (found.get(id) ?? found.set(id, []).get(id)!).push(claim);
  }
  return found;
}

/** A search value taken literally: FHIR search escapes `,` (OR), `|` (system) and `$` with `\`. */
function escape(value: string): string {
  return value.replace(/[\\,|$]/g, (c) => `\\${c}`);
}

/** The claim's lifecycle: its claim-lifecycle-id extension, else its own id. */
export function lifecycleIdOf(claim: Claim): string {
  const ext = claim.extension?.find((e) => e.url === EXTENSION_URLS.claimLifecycleId);
  return ext?.valueString ?? claim.id!;
}

/**
 * The claim's patient as the key of its billing account (`Patient/123`): the relative reference,
 * also when the claim holds an absolute one. A claim without a literal patient reference cannot
 * take payments: a credit must belong to someone.
 */
export function patientRefOf(claim: Claim): string {
  const reference = claim.patient?.reference;
  if (!reference) throw new BillingFailure(`Claim/${claim.id} has no patient reference`);
  return relativeReference(reference);
}

export function relativeReference(reference: string): string {
  const parts = reference.split('/_history/')[0].split('/');
  return parts.length >= 2 ? `${parts[parts.length - 2]}/${parts[parts.length - 1]}` : reference;
}

/**
 * Every live claim of lifecycle `lifecycleId`: those whose claim-lifecycle-id is it, plus the claim
 * whose id it is when that claim names no other lifecycle (an original claim without the extension,
 * whose corrections point at its id). `known`: that claim, when the caller holds it.
 */
export async function lifecycleClaims(repo: PostgresRepository, lifecycleId: string, known?: Claim): Promise<Claim[]> {
  const tagged = await repo.searchResources<Claim>({
    resourceType: 'Claim',
    filters: [{ code: 'lifecycle', operator: Operator.EQUALS, value: escape(lifecycleId) }],
    count: MAX_LIFECYCLE_CLAIMS,
  });
  const byId = new Map(tagged.map((c) => [c.id!, c]));
  // The caller may already hold the claim whose id it is (live, read in this transaction): no need to search for it.
  if (known?.id === lifecycleId && known.status !== 'entered-in-error' && lifecycleIdOf(known) === lifecycleId && !byId.has(lifecycleId)) byId.set(lifecycleId, { ...known, id: lifecycleId });
  if (!byId.has(lifecycleId)) {
    const own = await repo.searchResources<Claim>({
      resourceType: 'Claim',
      filters: [{ code: '_id', operator: Operator.EQUALS, value: escape(lifecycleId) }],
    });
    for (const c of own) if (lifecycleIdOf(c) === lifecycleId) byId.set(c.id!, c);
  }
  return [...byId.values()].sort(newestFirst);
}

export interface Responsibility {
  /** What the patient owes on the lifecycle; zero when no ClaimResponse says so yet. */
  amount: Amount;
  /** The ClaimResponse it comes from, if any. */
  claimResponse?: ClaimResponse;
}

/**
 * The patient's responsibility on a lifecycle, from the most recent active ClaimResponse (use
 * `claim`; newest `created`, then newest `meta.lastUpdated`) whose `request` is one of its claims:
 * its `total` with category C4BBAdjudication|memberliability, or else the sum of that category over
 * the adjudications of its items and added items. No such ClaimResponse: zero (so a payment is
 * kept whole as a PatientCredit, allocatable once the claim is adjudicated).
 */
export async function responsibilityOf(repo: PostgresRepository, claims: Claim[], currency: string): Promise<Responsibility> {
  if (claims.length === 0) return { amount: ZERO };
  const responses = await repo.searchResources<ClaimResponse>({
    resourceType: 'ClaimResponse',
    filters: [
      { code: 'request', operator: Operator.EQUALS, value: claims.map((c) => `Claim/${c.id}`).join(',') },
      { code: 'status', operator: Operator.EQUALS, value: 'active' },
    ],
    count: MAX_LIFECYCLE_CLAIMS,
  });
  const latest = responses.filter((r) => r.use === 'claim').sort(newestFirst)[0];
  if (!latest) return { amount: ZERO };
  return { amount: memberLiabilityOf(latest, currency), claimResponse: latest };
}

/** What one ClaimResponse says the patient owes (in the book currency): its memberliability total, else the sum over its items. */
export function memberLiabilityOf(response: ClaimResponse, currency: string): Amount {
  const total = response.total?.find((t) => isMemberLiability(t.category?.coding));
  if (total) return moneyAmount(total.amount, response, currency);
  const adjudications = [...(response.item ?? []), ...(response.addItem ?? [])].flatMap((i) => i.adjudication ?? []);
  return sum(adjudications.filter((a) => isMemberLiability(a.category?.coding) && a.amount).map((a) => moneyAmount(a.amount, response, currency)));
}

function isMemberLiability(coding: { system?: string; code?: string }[] | undefined): boolean {
  return (coding ?? []).some((c) => c.system === MEMBER_LIABILITY.system && c.code === MEMBER_LIABILITY.code);
}

/**
 * A ClaimResponse amount as money we can apply: in the book currency (absent means it), rounded
 * half-even to its minor unit.
 */
function moneyAmount(money: Money | undefined, source: ClaimResponse, currency: string): Amount {
  if (money?.value === undefined) return ZERO;
  if (money.currency && money.currency !== currency) {
    throw new BillingFailure(`ClaimResponse/${source.id} states the patient responsibility in ${money.currency}; this tenant's books are in ${currency}`);
  }
  return amount(money.value, currency);
}

/** Newest first: `created`, then `meta.lastUpdated`, then id (stable). */
function newestFirst(a: Claim | ClaimResponse, b: Claim | ClaimResponse): number {
  return (
    time(b.created) - time(a.created) ||
    time(b.meta?.lastUpdated) - time(a.meta?.lastUpdated) ||
    (a.id! < b.id! ? -1 : a.id! > b.id! ? 1 : 0)
  );
}

function time(value: string | undefined): number {
  const t = value ? Date.parse(value) : NaN;
  return Number.isNaN(t) ? 0 : t;
}

/**
 * Writes `paid` into the patient-paid-amount extension of every claim of the lifecycle whose value
 * differs: a new version of each, through the repository, so Claim subscribers are notified.
 */
export async function stampPaidAmount(repo: PostgresRepository, lifecycleId: string, paid: Amount, currency: string): Promise<number> {
  let written = 0;
  for (const found of await lifecycleClaims(repo, lifecycleId)) {
    // If-Match on the version read, so a client's concurrent edit of the claim is never overwritten:
    // on a mismatch the update has locked the row, so reading it again gives the version to build on.
    let claim: Claim = found;
    for (let attempt = 1; ; attempt++) {
      const current = claim.extension?.find((e) => e.url === EXTENSION_URLS.patientPaidAmount)?.valueMoney;
      if (current?.value !== undefined && current.currency === currency && amount(current.value, currency).eq(paid)) break;
      const extension: Extension[] = [
        ...(claim.extension ?? []).filter((e) => e.url !== EXTENSION_URLS.patientPaidAmount),
        { url: EXTENSION_URLS.patientPaidAmount, valueMoney: fhirMoney(paid, currency) },
      ];
      try {
        await repo.updateResource<Claim>({ ...claim, extension }, { ifMatch: claim.meta?.versionId });
        written++;
        break;
      } catch (err) {
        if (!(err instanceof OperationOutcomeError) || getStatus(err.outcome) !== 412 || attempt >= 3) throw err;
        claim = await repo.readResource<Claim>('Claim', claim.id!);
      }
    }
  }
  return written;
}
