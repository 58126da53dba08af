import { randomUUID } from 'node:crypto';
import { Operator } from '@medplum/core';
import type { Claim, ClaimResponse, Identifier, Organization, PaymentReconciliation, PaymentReconciliationDetail, Reference } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { findClaimsByBillId, findClaimsByBillIds, lifecycleClaims, lifecycleIdOf, patientRefOf } from './claims.ts';
import { currencyOf } from './currency.ts';
import { fhirMoney } from './money.ts';
import type { Amount } from './money.ts';
import { releaseExcess } from './release.ts';
import {
  closeRemittance, findRemittance, insertRemittance, listWaitingClaims, lockWaitingClaims, readRemittance, remittanceClaims, saveRemittanceClaim, saveRemittanceClaims,
} from './remittance-store.ts';
import type { Queryable } from '../db/index.ts';
import type { RemittanceClaimRow } from './remittance-store.ts';
import { PAYMENT_TYPE_SYSTEM } from './resources.ts';
import { BillingFailure } from './result.ts';
import { bookCurrency } from './currency-store.ts';
import { claimIdSystem, lockAccount, lockPaymentKey } from './store.ts';

/**
 * Payer remittances, whatever format they came in (inbound/x12-835 maps the 835): one payer
 * payment (a PaymentReconciliation, identified by the payer's trace) made of claim payments, each
 * a ClaimResponse on the claim with that bill id. The ClaimResponse's memberliability total is the
 * patient responsibility payments apply against (claims.responsibilityOf); writing it lets waiting
 * PatientCredit apply (observer.ts), and a lower one (or a reversal, which cancels the response it
 * names) releases what was paid beyond it back to PatientCredit (release.ts). A claim payment
 * whose claim is not here waits and applies when the claim is written (observer.ts). The caller
 * runs begin, every claim and finish in ONE transaction, so a refused file writes nothing.
 */

export const PAYER_CLAIM_ID_SYSTEM = 'https://fhir-billing.org/fhir/identifier/payer-claim-control-number';

export interface RemittanceInput {
  /** Payer trace: the check or EFT number under the payer's id; the remittance's identity. */
  traceNumber: string;
  payerId: string;
  paymentAmount: Amount;
  /** The currency of every amount of it (the 835's: USD); another than the book currency is refused. */
  currency: string;
  paymentDate: string;
  /** Who paid and who was paid, as the payer names them (an Organization each, found or created by identifier). */
  payer: PartyInput;
  payee: PartyInput;
  /** The PaymentReconciliation without id, payment issuer, requestor and details (billing adds them). */
  reconciliation: Omit<PaymentReconciliation, 'id' | 'detail'>;
}

export interface PartyInput {
  name: string;
  identifier?: Identifier;
}

/** What a claim payment needs of its remittance: its id, trace and payer (the ClaimResponse's insurer). */
export interface RemittanceRef {
  id: string;
  traceKey: string;
  payer: Reference<Organization>;
  /** The book currency. */
  currency: string;
}

export type BeginOutcome =
  | { status: 'new'; remittanceId: string; paymentReconciliationId: string; remittance: RemittanceRef }
  | { status: 'seen'; remittanceId: string; paymentReconciliationId: string; contentHash: string }
  /** Not in the tenant's book currency: nothing written. */
  | { status: 'refused'; message: string };

export const traceKey = (payerId: string, traceNumber: string): string => JSON.stringify([payerId, traceNumber]);

/** Starts a remittance, or says it was recorded before (then the caller writes nothing more of it). */
export async function beginRemittance(tx: PostgresRepository, input: RemittanceInput): Promise<BeginOutcome> {
  const tenantId = tx.context.tenantId;
  const currency = await currencyOf(tx, input.currency);
  if (!currency.ok) return { status: 'refused', message: currency.message };
  const key = traceKey(input.payerId, input.traceNumber);
  await lockPaymentKey(tx.conn, tenantId, `remittance:${key}`);
  const seen = await findRemittance(tx.conn, tenantId, key);
  if (seen) return { status: 'seen', remittanceId: seen.id, paymentReconciliationId: seen.paymentReconciliationId, contentHash: seen.contentHash };
  const payer = await organization(tx, input.payer);
  const payee = await organization(tx, input.payee);
  const id = randomUUID();
  const reconciliation = { ...input.reconciliation, paymentIssuer: payer, requestor: payee };
  const paymentReconciliationId = randomUUID();
  await insertRemittance(tx.conn, tenantId, {
    id, traceKey: key, traceNumber: input.traceNumber, payerId: input.payerId, paymentAmount: input.paymentAmount, paymentDate: input.paymentDate,
    paymentReconciliationId, header: { reconciliation, payer, payee, adjustments: [] },
  });
  return { status: 'new', remittanceId: id, paymentReconciliationId, remittance: { id, traceKey: key, payer, currency: currency.value } };
}

/** One claim payment: the ClaimResponse to write (billing adds request and patient), or the reversal of one. */
export interface ClaimAdjudicationInput {
  /** The claim's bill id (Claim.identifier value in the tenant's claim-id system). */
  billId: string;
  /** The Claim.identifier system of billId (a webhook source's option); absent: the tenant's claim-id system. */
  claimIdSystem?: string;
  payerClaimId?: string;
  /** The payer's claim status code, as sent. */
  statusCode: string;
  /** What the payer paid on it (negative for a reversal). */
  paid: Amount;
  /** Reverses the earlier ClaimResponse with this payer claim id instead of writing one. */
  reversal: boolean;
  response: Omit<ClaimResponse, 'request' | 'patient' | 'insurer'>;
}

export interface ClaimAdjudicationOutcome {
  status: 'applied' | 'waiting';
  claimId?: string;
  claimResponseId?: string;
}

export async function recordClaimAdjudication(tx: PostgresRepository, remittance: RemittanceRef, seq: number, input: ClaimAdjudicationInput): Promise<ClaimAdjudicationOutcome> {
  return (await recordClaimAdjudications(tx, remittance, [{ seq, input }]))[0];
}

/**
 * Several claim payments of one remittance, in order, as recordClaimAdjudication would record
 * each: their claims found in one search per claim-id system, their rows written in one statement.
 * (Nothing a claim payment writes changes which claims carry a bill id, so finding them first finds
 * what finding each in turn would.) An account locked for one is not locked again for the next: the
 * lock holds until the transaction ends.
 */
export async function recordClaimAdjudications(
  tx: PostgresRepository,
  remittance: RemittanceRef,
  claims: readonly { seq: number; input: ClaimAdjudicationInput }[],
): Promise<ClaimAdjudicationOutcome[]> {
  const tenantId = tx.context.tenantId;
  const tenantSystem = claims.some((c) => c.input.claimIdSystem === undefined) ? await claimIdSystem(tx.conn, tenantId) : undefined;
  const rows: RemittanceClaimRow[] = claims.map(({ seq, input }) => ({
    remittanceId: remittance.id, seq, billId: input.billId, claimIdSystem: input.claimIdSystem ?? tenantSystem!, payerClaimId: input.payerClaimId ?? null,
    statusCode: input.statusCode, paidAmount: input.paid, status: 'waiting', claimId: null, claimResponseId: null,
    adjudication: { reversal: input.reversal, response: input.response },
  }));
  const found = new Map<string, Map<string, Claim[]>>();
  for (const system of new Set(rows.map((r) => r.claimIdSystem))) {
    found.set(system, await findClaimsByBillIds(tx, system, rows.filter((r) => r.claimIdSystem === system).map((r) => r.billId)));
  }
  const locked = new Set<string>();
  for (const row of rows) {
    const claim = found.get(row.claimIdSystem)!.get(row.billId)?.[0];
    if (claim) await applyToClaim(tx, remittance, row, claim, locked);
  }
  await saveRemittanceClaims(tx.conn, tenantId, rows);
  return rows.map((row) => ({ status: row.status, ...(row.claimId && { claimId: row.claimId }), ...(row.claimResponseId && { claimResponseId: row.claimResponseId }) }));
}

/** Provider-level adjustments (PLB) as PaymentReconciliation details, and the content hash; writes the PaymentReconciliation. */
export async function finishRemittance(tx: PostgresRepository, remittanceId: string, end: { contentHash: string; adjustments: PaymentReconciliationDetail[] }): Promise<PaymentReconciliation> {
  const r = await readRemittance(tx.conn, tx.context.tenantId, remittanceId);
  const header = { ...r.header, adjustments: end.adjustments };
  await closeRemittance(tx.conn, tx.context.tenantId, remittanceId, end.contentHash, header);
  return writeReconciliation(tx, remittanceId, 'create', await bookCurrency(tx.conn, tx.context.tenantId));
}

/**
 * Claim payments that waited for a claim with one of these bill ids apply now, oldest first
 * (observer.ts, in the transaction of the Claim's write). Each payment's PaymentReconciliation is
 * written again so its detail names the claim and its response.
 */
export async function applyWaitingRemittanceClaims(tx: PostgresRepository, billIds: string[]): Promise<number> {
  const tenantId = tx.context.tenantId;
  const touched = new Set<string>();
  let applied = 0;
  let currency: string | undefined;
  for (const row of await lockWaitingClaims(tx.conn, tenantId, billIds)) {
    const found = await findClaimsByBillId(tx, row.claimIdSystem, row.billId);
    if (found.length === 0) continue; // the bill id is in another identifier system
    // Marked applied first: the writes below re-stamp claims, whose observer must not apply it again.
    await saveRemittanceClaim(tx.conn, tenantId, { ...row, status: 'applied', claimId: found[0].id! });
    const r = await readRemittance(tx.conn, tenantId, row.remittanceId);
    currency ??= await bookCurrency(tx.conn, tenantId);
    await applyToClaim(tx, { id: r.id, traceKey: r.traceKey, payer: (r.header as { payer: Reference<Organization> }).payer, currency }, row, found[0]);
    await saveRemittanceClaim(tx.conn, tenantId, row);
    touched.add(row.remittanceId);
    applied++;
  }
  for (const id of touched) await writeReconciliation(tx, id, 'update', currency!);
  return applied;
}

/** A claim payment waiting for its Claim, as an operator sees it. */
export interface WaitingClaimPaymentView {
  tenant: string;
  remittanceId: string;
  /** The payer trace ([payer id, trace number]) of its remittance. */
  trace: [string, string];
  seq: number;
  billId: string;
  payerClaimId?: string;
  statusCode: string;
  paid: string;
  receivedAt: string;
}

/** What waits for its Claim, oldest first; without a tenant: every tenant's (the admin API is an operator's). */
export async function listWaitingClaimPayments(conn: Queryable, tenantId?: string): Promise<WaitingClaimPaymentView[]> {
  return (await listWaitingClaims(conn, tenantId)).map((c) => ({
    tenant: c.tenantId, remittanceId: c.remittanceId, trace: JSON.parse(c.traceKey) as [string, string], seq: c.seq, billId: c.billId,
    ...(c.payerClaimId && { payerClaimId: c.payerClaimId }), statusCode: c.statusCode, paid: c.paidAmount.toFixed(2), receivedAt: c.receivedAt,
  }));
}

/** `locked`: the accounts this transaction has locked already (a batch's), so not locked again. */
async function applyToClaim(tx: PostgresRepository, remittance: RemittanceRef, row: RemittanceClaimRow, claim: Claim, locked?: Set<string>): Promise<void> {
  const tenantId = tx.context.tenantId;
  const patientRef = patientRefOf(claim);
  if (!locked?.has(patientRef)) await lockAccount(tx.conn, tenantId, patientRef);
  locked?.add(patientRef);
  const lifecycleId = lifecycleIdOf(claim);
  const a = row.adjudication as { reversal: boolean; response: ClaimResponse };
  const insurer = remittance.payer;
  row.claimId = claim.id!;
  row.status = 'applied';
  if (a.reversal) {
    const target = await reversedResponse(tx, lifecycleId, row.payerClaimId);
    if (target) {
      const note = { type: 'display' as const, text: `Reversed by the payer (claim status ${row.statusCode}) in remittance ${remittance.traceKey}` };
      await tx.updateResource<ClaimResponse>({ ...target, status: 'cancelled', processNote: [...(target.processNote ?? []), { number: (target.processNote?.length ?? 0) + 1, ...note }] });
      row.claimResponseId = target.id!;
    }
  } else {
    const response = await tx.createResource<ClaimResponse>({
      ...a.response,
      resourceType: 'ClaimResponse',
      type: claim.type ?? a.response.type,
      patient: claim.patient,
      insurer,
      request: { reference: `Claim/${claim.id}` },
    });
    row.claimResponseId = response.id!;
  }
  await releaseExcess(tx, lifecycleId, remittance.currency, claim);
}

/** The active response a reversal names: the newest on the lifecycle with its payer claim id. */
async function reversedResponse(tx: PostgresRepository, lifecycleId: string, payerClaimId: string | null): Promise<ClaimResponse | undefined> {
  if (!payerClaimId) return undefined;
  const claims = await lifecycleClaims(tx, lifecycleId);
  const responses = await tx.searchResources<ClaimResponse>({
    resourceType: 'ClaimResponse',
    filters: [
      { code: 'identifier', operator: Operator.EQUALS, value: `${PAYER_CLAIM_ID_SYSTEM}|${payerClaimId.replace(/[\\,|$]/g, (c) => `\\${c}`)}` },
      { code: 'status', operator: Operator.EQUALS, value: 'active' },
    ],
    count: 100,
  });
  const ids = new Set(claims.map((c) => `Claim/${c.id}`));
  return responses.filter((r) => ids.has(r.request?.reference ?? '')).sort((x, y) => (y.meta?.lastUpdated ?? '').localeCompare(x.meta?.lastUpdated ?? ''))[0];
}

/** The PaymentReconciliation as its rows have it: one detail per claim payment, then the adjustments. */
async function writeReconciliation(tx: PostgresRepository, remittanceId: string, how: 'create' | 'update', currency: string): Promise<PaymentReconciliation> {
  const tenantId = tx.context.tenantId;
  const r = await readRemittance(tx.conn, tenantId, remittanceId);
  const header = r.header as { reconciliation: PaymentReconciliation; payee: Reference<Organization>; adjustments: PaymentReconciliationDetail[] };
  const detail: PaymentReconciliationDetail[] = [];
  for (const c of await remittanceClaims(tx.conn, tenantId, remittanceId)) {
    detail.push({
      identifier: { system: c.claimIdSystem, value: c.billId },
      type: { coding: [{ system: PAYMENT_TYPE_SYSTEM, code: 'payment', display: 'Payment' }] },
      ...(c.claimId && { request: { reference: `Claim/${c.claimId}` } }),
      ...(c.claimResponseId && { response: { reference: `ClaimResponse/${c.claimResponseId}` } }),
      payee: header.payee,
      date: header.reconciliation.paymentDate,
      amount: fhirMoney(c.paidAmount, currency),
    });
  }
  detail.push(...header.adjustments);
  const resource: PaymentReconciliation = { ...header.reconciliation, id: r.paymentReconciliationId, detail };
  if (how === 'create') return tx.createResource<PaymentReconciliation>(resource, { assignedId: true });
  const current = await tx.readResource<PaymentReconciliation>('PaymentReconciliation', r.paymentReconciliationId);
  return tx.updateResource<PaymentReconciliation>({ ...resource, meta: current.meta });
}

/** The party's Organization: found by its identifier, else created; a party without one is named only. */
async function organization(tx: PostgresRepository, party: PartyInput): Promise<Reference<Organization>> {
  if (!party.identifier?.system || !party.identifier.value) return { display: party.name };
  const { system, value } = party.identifier;
  const found = await tx.searchResources<Organization>({
    resourceType: 'Organization',
    filters: [{ code: 'identifier', operator: Operator.EQUALS, value: `${system}|${value.replace(/[\\,|$]/g, (c) => `\\${c}`)}` }],
    count: 1,
  });
  const org = found[0] ?? (await tx.createResource<Organization>({ resourceType: 'Organization', active: true, identifier: [{ system, value }], ...(party.name && { name: party.name }) }));
  if (!org.id) throw new BillingFailure('Organization without id');
  return { reference: `Organization/${org.id}`, ...(party.name && { display: party.name }) };
}
