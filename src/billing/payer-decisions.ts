import { Operator } from '@medplum/core';
import type { Claim, ClaimResponse, Coverage, Extension, Identifier, Organization, Patient, Reference, Resource } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { CANONICAL_BASE } from '../profiles/index.ts';
import { findClaimsByBillId } from './claims.ts';
import { lockPaymentKey } from './store.ts';

/**
 * recordPayerDecision: a payer's decision on a claim (an HMO's vetting, an insurer's
 * pre-authorization) as FHIR, whoever sent it. The sender maps its body to resources; this command
 * decides what to write:
 * - the ClaimResponse is one per payer decision (`responseIdentifier`), upserted: a later decision
 *   replaces it, an older one (by `created`; at the same time, a non-final after a final one) is
 *   out of date and changes nothing, an identical one changes nothing;
 * - the Claim is the one it answers (the earlier response's request, else the claim's bill id),
 *   and is created from the sender's data only when none is here, with its Patient, Coverage and
 *   Organizations found by identifier or created, so nothing the sender told us is lost.
 * Money follows by itself: the ClaimResponse is written through the repository, so billing's
 * observer applies waiting credit to whatever patient responsibility it states.
 */
export const ADJUDICATION_FINAL = `${CANONICAL_BASE}/StructureDefinition/adjudication-final`;

export interface PartyDraft<T extends Resource> {
  /** Found by this identifier; created from `resource` when absent. */
  identifier: Identifier;
  resource: T;
}

export interface Parties {
  patient: Reference<Patient>;
  coverage?: Reference<Coverage>;
  insurer: Reference<Organization>;
  provider?: Reference<Organization>;
}

export interface PayerDecisionInput {
  /** The claim's bill id and the identifier system it is kept in; absent: the sender named none. */
  claimLookup?: { system: string; value: string };
  responseIdentifier: Identifier & { system: string; value: string };
  insurer: PartyDraft<Organization>;
  /** Only for a claim created here. */
  provider?: PartyDraft<Organization>;
  patient: PartyDraft<Patient>;
  coverage: (parties: Pick<Parties, 'patient' | 'insurer'>) => PartyDraft<Coverage>;
  claim: (parties: Parties) => Claim;
  response: (parties: Parties & { claim: Reference<Claim> }) => ClaimResponse;
  /** When the payer decided (the response's `created`): a decision older than the stored one is out of date. */
  decidedAt: string;
  /** A final decision: at an equal `decidedAt`, it wins over a non-final one. */
  final: boolean;
}

export interface PayerDecisionOutcome {
  status: 'created' | 'updated' | 'unchanged' | 'out-of-date';
  claimId: string;
  claimCreated: boolean;
  claimResponseId: string;
}

const ref = <T extends Resource>(r: T & { id?: string }): Reference<T> => ({ reference: `${r.resourceType}/${r.id}` });
const token = (i: { system: string; value: string }): string => `${esc(i.system)}|${esc(i.value)}`;
const esc = (v: string): string => v.replace(/[\\,|$]/g, (c) => `\\${c}`);

export async function recordPayerDecision(repo: PostgresRepository, input: PayerDecisionInput): Promise<PayerDecisionOutcome> {
  const tenantId = repo.context.tenantId;
  const key = input.responseIdentifier;
  await lockPaymentKey(repo.conn, tenantId, `claim-response|${key.system}|${key.value}`);
  const [existing] = await repo.searchResources<ClaimResponse>({
    resourceType: 'ClaimResponse',
    filters: [{ code: 'identifier', operator: Operator.EQUALS, value: token(key) }],
    count: 1,
  });
  const insurer = await ensure(repo, 'Organization', input.insurer);
  const found = await answeredClaim(repo, existing, input);
  if (existing && found && isOutOfDate(existing, input)) {
    return { status: 'out-of-date', claimId: found.id!, claimCreated: false, claimResponseId: existing.id! };
  }
  let claim = found;
  let claimCreated = false;
  if (!claim) {
    const patient = ref(await ensure(repo, 'Patient', input.patient));
    const coverage = ref(await ensure(repo, 'Coverage', input.coverage({ patient, insurer: ref(insurer) })));
    const provider = input.provider && ref(await ensure(repo, 'Organization', input.provider));
    claim = await repo.createResource<Claim>(input.claim({ patient, coverage, insurer: ref(insurer), ...(provider && { provider }) }));
    claimCreated = true;
  } else {
    // The claim is here: its parties stay, but those we know again gain identifiers they lack.
    if (input.provider) await ensure(repo, 'Organization', input.provider, false);
    await ensure(repo, 'Patient', input.patient, false);
  }
  const parties: Parties = {
    patient: claim.patient as Reference<Patient>,
    insurer: ref(insurer),
    ...(claim.provider?.reference && { provider: claim.provider as Reference<Organization> }),
  };
  const drafted = input.response({ ...parties, claim: ref(claim) });
  const response: ClaimResponse = {
    ...drafted,
    created: input.decidedAt,
    identifier: [key, ...(drafted.identifier ?? []).filter((i) => i.system !== key.system)],
    extension: [...(drafted.extension ?? []).filter((e) => e.url !== ADJUDICATION_FINAL), ...finalMark(input.final || isFinal(existing))],
  };
  if (!existing) {
    const created = await repo.createResource(response);
    return { status: 'created', claimId: claim.id!, claimCreated, claimResponseId: created.id! };
  }
  if (sameContent(existing, response)) return { status: 'unchanged', claimId: claim.id!, claimCreated, claimResponseId: existing.id! };
  await repo.updateResource({ ...response, id: existing.id }, { ifMatch: existing.meta?.versionId });
  return { status: 'updated', claimId: claim.id!, claimCreated, claimResponseId: existing.id! };
}

/** The claim an earlier response answers, else the one with the bill id (newest live one). */
async function answeredClaim(repo: PostgresRepository, existing: ClaimResponse | undefined, input: PayerDecisionInput): Promise<Claim | undefined> {
  const request = existing?.request?.reference;
  if (request?.startsWith('Claim/')) {
    const claim = await repo.readResource<Claim>('Claim', request.slice('Claim/'.length)).catch(() => undefined);
    if (claim && claim.status !== 'entered-in-error') return claim;
  }
  if (!input.claimLookup) return undefined;
  return (await findClaimsByBillId(repo, input.claimLookup.system, input.claimLookup.value))[0];
}

const isFinal = (r: ClaimResponse | undefined): boolean => r?.extension?.some((e) => e.url === ADJUDICATION_FINAL && e.valueBoolean === true) ?? false;
const finalMark = (final: boolean): Extension[] => (final ? [{ url: ADJUDICATION_FINAL, valueBoolean: true }] : []);

function isOutOfDate(existing: ClaimResponse, input: PayerDecisionInput): boolean {
  const before = Date.parse(existing.created ?? '');
  const now = Date.parse(input.decidedAt);
  if (Number.isNaN(before) || Number.isNaN(now)) return false;
  return now < before || (now === before && isFinal(existing) && !input.final);
}

/** Equal apart from what the server sets. */
function sameContent(existing: ClaimResponse, next: ClaimResponse): boolean {
  const strip = ({ id: _id, meta: _meta, ...rest }: ClaimResponse) => rest;
  return canonical(strip(existing)) === canonical(strip(next));
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

/**
 * The resource with this identifier, or a new one (`create`; else nothing). Locked by identifier,
 * so two claims of one new patient arriving at once create one Patient.
 */
async function ensure<T extends Resource>(repo: PostgresRepository, type: T['resourceType'], draft: PartyDraft<T>): Promise<T & { id: string }>;
async function ensure<T extends Resource>(repo: PostgresRepository, type: T['resourceType'], draft: PartyDraft<T>, create: false): Promise<(T & { id: string }) | undefined>;
async function ensure<T extends Resource>(repo: PostgresRepository, type: T['resourceType'], draft: PartyDraft<T>, create = true): Promise<(T & { id: string }) | undefined> {
  const { system, value } = draft.identifier;
  if (!system || !value) return create ? ((await repo.createResource<T>(draft.resource)) as T & { id: string }) : undefined;
  await lockPaymentKey(repo.conn, repo.context.tenantId, `party|${type}|${system}|${value}`);
  const [found] = await repo.searchResources<T>({
    resourceType: type,
    filters: [{ code: 'identifier', operator: Operator.EQUALS, value: token({ system, value }) }],
    count: 1,
  });
  if (!found) return create ? ((await repo.createResource<T>(draft.resource)) as T & { id: string }) : undefined;
  // A party met again with identifiers it lacks (a provider's code, an enrollee's insurance number) gains them.
  const has = (found as { identifier?: Identifier[] }).identifier ?? [];
  const missing = ((draft.resource as { identifier?: Identifier[] }).identifier ?? []).filter((i) => !has.some((h) => h.system === i.system));
  if (missing.length === 0) return found as T & { id: string };
  return (await repo.updateResource<T>({ ...found, identifier: [...has, ...missing] }, { ifMatch: found.meta?.versionId })) as T & { id: string };
}
