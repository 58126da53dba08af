import { Operator } from '@medplum/core';
import type { Claim, ClaimResponse, ClaimResponseItem, Identifier, Money, Organization } from '@medplum/fhirtypes';
import { CANONICAL_BASE } from '../../profiles/index.ts';
import { amountFields } from '../../formats/tyro.ts';
import type { AmountField } from '../../formats/tyro.ts';
import type { FormatContext, PayloadFormat } from './format.ts';

/**
 * Tyro Health's invoice webhooks, sent by us (src/formats/tyro.ts is the shared wire shape): each
 * ClaimResponse version becomes one `{event, transaction}` POST, signed X-Sender-Signature /
 * X-Sender-Timestamp over the exact bytes (sign.ts):
 *   outcome error                      healthFundRejectedInvoice
 *   with a payment                     healthFundPaidInvoice
 *   outcome complete or partial        healthFundApprovedInvoice
 *   queued, cancelled, deleted         nothing
 * and a Claim version whose patient-paid-amount first covers what its ClaimResponse says the
 * patient owes becomes invoiceCompleted (businessStatus completed). The transaction is rendered
 * from FHIR: _id the ClaimResponse's Tyro transaction identifier (else its id), invoiceReference
 * the Claim's first identifier, modified ClaimResponse.created, funder the insurer Organization,
 * one claim whose items are the ClaimResponse's items. README lists what FHIR cannot keep.
 */
const TRANSACTION_SYSTEM = `${CANONICAL_BASE}/identifier/tyro-transaction-id`;
const FUNDER_SYSTEM = `${CANONICAL_BASE}/identifier/tyro-funder`;
const PAID_EXTENSION = `${CANONICAL_BASE}/StructureDefinition/patient-paid-amount`;
const MEMBER_LIABILITY = 'memberliability';
const CLAIM_STATUSES = new Set(['pending', 'under-review', 'approved', 'rejected']);

type Transaction = Record<string, unknown>;

export const tyroFormat: PayloadFormat = {
  code: 'tyro',
  signatureScheme: 'x-sender-signature',
  needsResource: () => true,
  render: async ({ type, event }, ctx) => {
    if (type !== 'event-notification' || !event?.resource || event.interaction === 'delete') return [];
    const rendered = event.resource.resourceType === 'ClaimResponse'
      ? await fromClaimResponse(event.resource as ClaimResponse, ctx)
      : event.resource.resourceType === 'Claim'
        ? await fromClaim(event.resource as Claim, ctx)
        : undefined;
    if (!rendered) return [];
    return [{ method: 'POST', url: ctx.config.endpoint, body: JSON.stringify(rendered), contentType: 'application/json' }];
  },
};

function eventOf(cr: ClaimResponse): string | undefined {
  if (cr.status !== 'active' || cr.use !== 'claim') return undefined;
  if (cr.outcome === 'error') return 'healthFundRejectedInvoice';
  if (cr.payment?.amount) return 'healthFundPaidInvoice';
  if (cr.outcome === 'complete' || cr.outcome === 'partial') return 'healthFundApprovedInvoice';
  return undefined;
}

async function fromClaimResponse(cr: ClaimResponse, ctx: FormatContext): Promise<{ event: string; transaction: Transaction } | undefined> {
  const event = eventOf(cr);
  if (!event) return undefined;
  const claim = await read<Claim>(ctx, cr.request?.reference);
  return { event, transaction: await transactionOf(cr, claim, ctx, event === 'healthFundPaidInvoice' || cr.outcome === 'error' ? undefined : 'outstanding') };
}

async function fromClaim(claim: Claim, ctx: FormatContext): Promise<{ event: string; transaction: Transaction } | undefined> {
  const paid = paidOn(claim);
  if (paid === undefined) return undefined;
  const responses = await ctx.repository.searchResources<ClaimResponse>({
    resourceType: 'ClaimResponse',
    filters: [{ code: 'request', operator: Operator.EQUALS, value: `Claim/${claim.id}` }, { code: 'status', operator: Operator.EQUALS, value: 'active' }],
    count: 100,
  });
  const cr = responses.filter((r) => r.use === 'claim').sort((a, b) => Date.parse(b.created) - Date.parse(a.created))[0];
  if (!cr) return undefined;
  const owed = totalOf(cr, MEMBER_LIABILITY);
  if (owed === undefined || paid < owed) return undefined;
  // Only the version that completed it: the one before owed more than was paid (or had no payment).
  const version = Number(claim.meta?.versionId ?? '1');
  const before = version > 1 ? await ctx.repository.readVersion<Claim>('Claim', claim.id!, String(version - 1)).catch(() => undefined) : undefined;
  if (before && (paidOn(before) ?? 0) >= owed) return undefined;
  return { event: 'invoiceCompleted', transaction: await transactionOf(cr, claim, ctx, 'completed') };
}

async function transactionOf(cr: ClaimResponse, claim: Claim | undefined, ctx: FormatContext, businessStatus: string | undefined): Promise<Transaction> {
  const insurer = await read<Organization>(ctx, cr.insurer?.reference);
  const funder = insurer?.identifier?.find((i) => i.system === FUNDER_SYSTEM)?.value;
  const currency = [...(cr.total ?? []).map((t) => t.amount), cr.payment?.amount].find((m): m is Money => !!m?.currency)?.currency;
  const claimStatus = cr.outcome === 'error' ? 'rejected' : cr.outcome === 'queued' ? 'pending' : 'approved';
  return {
    _id: identifierValue(cr.identifier, TRANSACTION_SYSTEM) ?? cr.id,
    invoiceReference: claim?.identifier?.[0]?.value ?? cr.request?.reference,
    businessStatus: businessStatus ?? (cr.outcome === 'error' ? 'declined' : 'completed'),
    ...(instantOf(claim?.created) && { created: instantOf(claim?.created) }),
    modified: cr.created,
    ...(currency && { currencyCode: currency }),
    ...((funder || cr.insurer?.display) && { funder: funder ? { code: funder, name: insurer?.name ?? cr.insurer?.display } : cr.insurer?.display }),
    claims: [
      {
        status: claimStatus,
        ...amounts({ benefit: totalOf(cr, 'benefit'), gap: totalOf(cr, MEMBER_LIABILITY), fee: totalOf(cr, 'submitted') }, 'amountExpectedBenefit'),
        claimItems: (cr.item ?? []).map(itemOf),
      },
    ],
  };
}

function itemOf(item: ClaimResponseItem): Record<string, unknown> {
  const by = (code: string) => item.adjudication.find((a) => a.category.coding?.some((c) => c.code === code))?.amount?.value;
  // Our inbound side writes the fund's decision as "status; description; gateway code NN".
  const [status, ...rest] = (item.adjudication.find((a) => a.reason?.text)?.reason?.text ?? '').split('; ');
  const gateway = rest.find((r) => r.startsWith('gateway code '));
  const description = rest.filter((r) => r !== gateway).join('; ');
  return {
    ...(CLAIM_STATUSES.has(status) && { status }),
    ...(description && { statusDescription: description }),
    ...(gateway && { gatewayCode: gateway.slice('gateway code '.length) }),
    ...amounts({ benefit: by('benefit'), gap: by(MEMBER_LIABILITY), fee: by('submitted') }, 'amountActualBenefit'),
  };
}

function amounts(a: { benefit?: number; gap?: number; fee?: number }, benefitField: AmountField): Record<string, unknown> {
  return {
    ...(a.fee !== undefined && amountFields('amountFee', String(a.fee))),
    ...(a.benefit !== undefined && amountFields(benefitField, String(a.benefit))),
    ...(a.gap !== undefined && amountFields('amountGap', String(a.gap))),
  };
}

function totalOf(cr: ClaimResponse, code: string): number | undefined {
  return cr.total?.find((t) => t.category.coding?.some((c) => c.code === code))?.amount.value;
}

function paidOn(claim: Claim): number | undefined {
  return claim.extension?.find((e) => e.url === PAID_EXTENSION)?.valueMoney?.value;
}

function identifierValue(ids: Identifier[] | undefined, system: string): string | undefined {
  return ids?.find((i) => i.system === system)?.value;
}

async function read<T>(ctx: FormatContext, reference: string | undefined): Promise<T | undefined> {
  const m = /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(reference ?? '');
  if (!m) return undefined;
  return (await ctx.repository.readResource(m[1], m[2]).catch(() => undefined)) as T | undefined;
}

/** A FHIR dateTime as the ISO instant Tyro's `created` is; a date counts from its midnight UTC, a partial one not at all. */
function instantOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return `${value}T00:00:00.000Z`;
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/.test(value) ? value : undefined;
}
