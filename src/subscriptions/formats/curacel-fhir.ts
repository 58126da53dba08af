import type { Claim, ClaimResponse, Coverage, Extension, Identifier, Money, Organization, Patient, Reference, Resource } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../../fhir/repository.ts';
import { ADJUDICATION } from '../../formats/curacel.ts';
import type { FormatContext } from './format.ts';
import type { OutboundRequest } from '../render.ts';

/**
 * Reading what a Curacel-shaped payload is rendered from: a ClaimResponse, the Claim it answers,
 * and the Claim's patient, coverage, provider and insurer. Whatever wrote them (our webhook, a FHIR
 * client), a missing piece renders as null rather than failing the notification.
 */
export interface ClaimView {
  response: ClaimResponse;
  claim?: Claim;
  patient?: Patient;
  coverage?: Coverage;
  provider?: Organization;
  insurer?: Organization;
}

export async function viewOf(repo: PostgresRepository, response: ClaimResponse): Promise<ClaimView> {
  const claim = await readRef<Claim>(repo, response.request, 'Claim');
  const [patient, coverage, provider, insurer] = await Promise.all([
    readRef<Patient>(repo, claim?.patient ?? response.patient, 'Patient'),
    readRef<Coverage>(repo, claim?.insurance?.find((i) => i.focal)?.coverage ?? claim?.insurance?.[0]?.coverage, 'Coverage'),
    readRef<Organization>(repo, claim?.provider ?? response.requestor, 'Organization'),
    readRef<Organization>(repo, response.insurer ?? claim?.insurer, 'Organization'),
  ]);
  return { response, claim, patient, coverage, provider, insurer };
}

async function readRef<T extends Resource>(repo: PostgresRepository, ref: Reference | undefined, type: T['resourceType']): Promise<T | undefined> {
  const m = /^(?:.*\/)?([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/.*)?$/.exec(ref?.reference ?? '');
  if (!m || m[1] !== type) return undefined;
  return repo.readResource<T>(type, m[2]).catch(() => undefined);
}

export const identifierIn = (ids: Identifier[] | undefined, system: string): string | undefined => ids?.find((i) => i.system === system)?.value;
export const extensionOf = (r: { extension?: Extension[] } | undefined, url: string): Extension | undefined => r?.extension?.find((e) => e.url === url);

type Adjudication = { category?: { coding?: { system?: string; code?: string }[] }; amount?: Money; value?: number; reason?: { coding?: { system?: string; code?: string }[] } };
export const adjudicationOf = (list: Adjudication[] | undefined, code: string): Adjudication | undefined =>
  list?.find((a) => a.category?.coding?.some((c) => c.system === ADJUDICATION && c.code === code));

/** A whole number as a JSON number (the pile event's ids), anything else as the text it is. */
export const numberish = (v: string | undefined | null): number | string | null => (v === undefined || v === null ? null : /^\d{1,15}$/.test(v) ? Number(v) : v);

/**
 * One POST of a Curacel payload: exactly these bytes are signed (x-curacel-signature) and sent.
 * Encoded as Curacel's PHP json_encode does (`/` as `\/`, non-ASCII as \uXXXX), so a receiver
 * written against Curacel, whose sample re-escapes slashes before checking, verifies ours too.
 */
export function postJson(ctx: FormatContext, payload: unknown): OutboundRequest {
  return { method: 'POST', url: ctx.config.endpoint, body: phpJsonEncode(payload), contentType: 'application/json' };
}

export function phpJsonEncode(value: unknown): string {
  return JSON.stringify(value)
    .replace(/\//g, '\\/')
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
