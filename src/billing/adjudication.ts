import type { Claim, ClaimResponse, Identifier } from '@medplum/fhirtypes';
import type { Queryable } from '../db/index.ts';
import type { PostgresRepository } from '../fhir/repository.ts';
import { claimResponse, insurerOrganization, insurerReconciliation } from './adjudication-resources.ts';
import type { AdjudicatedItem, AdjudicationAmount, InsurerPayment, InsurerRef } from './adjudication-resources.ts';
import { findAdjudication, lockAdjudication, saveAdjudication, waitingForBillIds } from './adjudication-store.ts';
import type { AdjudicationRow } from './adjudication-store.ts';
import { findClaimsByBillId, lifecycleIdOf } from './claims.ts';
import { currencyOf } from './currency.ts';
import { amount, maxAmount } from './money.ts';
import type { Amount } from './money.ts';
import { BillingFailure, refuse } from './result.ts';
import type { BillingResult } from './result.ts';
import { bookCurrency } from './currency-store.ts';
import { claimIdSystem } from './store.ts';

/**
 * An insurer's (a health fund's) decision on a claim, as a sender reports it: one ClaimResponse per
 * response identity, whose memberliability is the patient responsibility that patient payments
 * apply against (claims.ts responsibilityOf; billing's observer applies waiting credit to it), and,
 * when the insurer paid, its PaymentReconciliation. Senders report states out of order, so each
 * report says when its state was reached (`asOf`) and how far along it is (`stage`, `final`):
 * an older report, or one that would move a final state to the same or an earlier stage, changes
 * nothing. A report for a claim that is not here yet waits (`whenClaimUnknown: 'hold'`) and
 * applies when a Claim with its bill id is written (observer.ts).
 */
export interface AdjudicationInput {
  source: string;
  /** The claim's id at the sender: Claim.identifier value in `claimIdSystem`. */
  billId: string;
  claimIdSystem?: string;
  /** ClaimResponse.identifier: the response's identity at the sender. */
  identifier: Identifier;
  /** FHIR instant when the sender's record reached this state; ClaimResponse.created. */
  asOf: string;
  stage: number;
  final: boolean;
  outcome: ClaimResponse['outcome'];
  /** cancelled: the response no longer stands (no responsibility comes from it). Default active. */
  status?: 'active' | 'cancelled';
  disposition?: string;
  insurer: InsurerRef;
  items: AdjudicatedItem[];
  totals: AdjudicationAmount[];
  payment?: InsurerPayment;
  whenClaimUnknown?: 'refuse' | 'hold';
  /**
   * The currency the sender states its amounts in; absent: the book currency. Another is refused.
   * Amounts are rounded here, half-even to the book currency's minor unit.
   */
  currency?: string;
}

export interface AdjudicationOutcome {
  /** recorded: applied; waiting: no claim yet; stale: older or behind a final state; unchanged: the same report again. */
  status: 'recorded' | 'waiting' | 'stale' | 'unchanged';
  claimResponseId?: string;
  paymentReconciliationId?: string;
}

const keyOf = (i: Identifier): string => `${i.system ?? ''}|${i.value ?? ''}`;

export async function recordAdjudication(repo: PostgresRepository, sent: AdjudicationInput): Promise<BillingResult<AdjudicationOutcome>> {
  if (!sent.identifier.value || !sent.identifier.system) throw new RangeError('An adjudication needs an identifier with a system and value');
  return repo.withTransaction(async (tx) => {
    const tenantId = tx.context.tenantId;
    const currency = await currencyOf(tx, sent.currency);
    if (!currency.ok) return currency;
    const input = inCurrency(sent, currency.value);
    if (!input) return refuse('invalid', `An amount is above ${maxAmount(currency.value).toFixed()} ${currency.value}`, 'amount');
    const key = keyOf(input.identifier);
    await lockAdjudication(tx.conn, tenantId, key);
    const row = await findAdjudication(tx.conn, tenantId, key);
    const ids = { ...(row?.claimResponseId && { claimResponseId: row.claimResponseId }), ...(row?.paymentReconciliationId && { paymentReconciliationId: row.paymentReconciliationId }) };
    if (row) {
      const before = Date.parse(row.asOf);
      const at = Date.parse(input.asOf);
      if (at === before && canonical(row.input) === canonical(rowOf(key, input, row.status, null, null).input)) return { ok: true, value: { status: 'unchanged', ...ids } };
      if (at <= before || (row.final && input.stage <= row.stage)) return { ok: true, value: { status: 'stale', ...ids } };
    }
    const claim = await claimFor(tx, input);
    if (!claim) {
      if ((input.whenClaimUnknown ?? 'refuse') === 'refuse') return refuse('not-found', `Claim not found for billId: ${input.billId}`, 'billId');
      await saveAdjudication(tx.conn, tenantId, rowOf(key, input, 'waiting', row?.claimResponseId ?? null, row?.paymentReconciliationId ?? null));
      return { ok: true, value: { status: 'waiting' } };
    }
    return { ok: true, value: await apply(tx, key, input, claim, row, currency.value) };
  });
}

/** Applies what waits for a claim with one of `billIds` (the observer, when such a Claim is written). */
export async function applyWaitingAdjudications(repo: PostgresRepository, conn: Queryable, billIds: string[]): Promise<void> {
  for (const key of await waitingForBillIds(conn, repo.context.tenantId, billIds)) {
    await lockAdjudication(repo.conn, repo.context.tenantId, key);
    const row = await findAdjudication(repo.conn, repo.context.tenantId, key);
    if (!row || row.status !== 'waiting') continue;
    const input = revive(row.input);
    const claim = await claimFor(repo, input);
    // Another claim-id system than the one the report names: it keeps waiting.
    if (claim) await apply(repo, key, input, claim, row, await bookCurrency(repo.conn, repo.context.tenantId));
  }
}

async function claimFor(repo: PostgresRepository, input: AdjudicationInput): Promise<Claim | undefined> {
  const system = input.claimIdSystem ?? (await claimIdSystem(repo.conn, repo.context.tenantId));
  const found = await findClaimsByBillId(repo, system, input.billId);
  const lifecycles = new Set(found.map(lifecycleIdOf));
  if (lifecycles.size > 1) throw new BillingFailure(`billId ${input.billId} matches claims of ${lifecycles.size} lifecycles`);
  return found[0];
}

async function apply(tx: PostgresRepository, key: string, input: AdjudicationInput, claim: Claim, row: AdjudicationRow | undefined, currency: string): Promise<AdjudicationOutcome> {
  if (!claim.patient?.reference) throw new BillingFailure(`Claim/${claim.id} has no patient reference`);
  const insurerId = await insurerOrganization(tx, input.insurer);
  const response = claimResponse({
    ...(row?.claimResponseId && { id: row.claimResponseId }),
    identifier: input.identifier,
    claim,
    insurerId,
    insurerName: input.insurer.name,
    created: input.asOf,
    outcome: input.outcome,
    status: input.status ?? 'active',
    ...(input.disposition && { disposition: input.disposition }),
    items: input.items,
    totals: input.totals,
    ...(input.payment && { payment: input.payment }),
    currency,
  });
  const written = row?.claimResponseId ? await tx.updateResource(response) : await tx.createResource(response);
  let reconciliationId = row?.paymentReconciliationId ?? null;
  if (input.payment) {
    const pr = insurerReconciliation({
      ...(reconciliationId && { id: reconciliationId }),
      payment: input.payment,
      created: input.asOf,
      insurerId,
      insurerName: input.insurer.name,
      claimId: claim.id!,
      claimResponseId: written.id!,
      currency,
    });
    reconciliationId = (reconciliationId ? await tx.updateResource(pr) : await tx.createResource(pr)).id!;
  }
  await saveAdjudication(tx.conn, tx.context.tenantId, rowOf(key, input, 'applied', written.id!, reconciliationId));
  return { status: 'recorded', claimResponseId: written.id!, ...(reconciliationId && { paymentReconciliationId: reconciliationId }) };
}

function rowOf(key: string, input: AdjudicationInput, status: AdjudicationRow['status'], claimResponseId: string | null, paymentReconciliationId: string | null): AdjudicationRow {
  return {
    responseKey: key,
    source: input.source,
    billId: input.billId,
    asOf: input.asOf,
    stage: input.stage,
    final: input.final,
    // Amounts are decimal.js: JSON gives their exact decimal text.
    input: JSON.parse(JSON.stringify(input)) as Record<string, unknown>,
    status,
    claimResponseId,
    paymentReconciliationId,
  };
}

/**
 * The command with every amount rounded half-even to `currency`'s minor unit (the one rounding of an
 * amount that entered in the sender's own precision) and the currency named; undefined when one is
 * above maxAmount.
 */
function inCurrency(input: AdjudicationInput, currency: string): AdjudicationInput | undefined {
  let tooLarge = false;
  const round = (a: Amount): Amount => {
    const r = amount(a, currency);
    if (r.abs().gt(maxAmount(currency))) tooLarge = true;
    return r;
  };
  const amounts = (list: AdjudicationAmount[]): AdjudicationAmount[] => list.map((a) => ({ ...a, amount: round(a.amount) }));
  const rounded: AdjudicationInput = {
    ...input,
    currency,
    items: input.items.map((item) => ({ ...item, amounts: amounts(item.amounts) })),
    totals: amounts(input.totals),
    ...(input.payment && { payment: { ...input.payment, amount: round(input.payment.amount) } }),
  };
  return tooLarge ? undefined : rounded;
}

/** A stored command back with its amounts as decimals. */
function revive(stored: Record<string, unknown>): AdjudicationInput {
  const i = stored as unknown as AdjudicationInput & { payment?: { amount: string } };
  const amounts = (list: AdjudicationAmount[]): AdjudicationAmount[] => list.map((a) => ({ ...a, amount: amount(String(a.amount)) }));
  return {
    ...i,
    items: i.items.map((item) => ({ ...item, amounts: amounts(item.amounts) })),
    totals: amounts(i.totals),
    ...(i.payment && { payment: { ...i.payment, amount: amount(String(i.payment.amount)) } }),
  };
}

/** JSON with object keys sorted (jsonb does not keep key order). */
function canonical(value: unknown): string {
  const sorted = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sorted) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, sorted(x)])) : v;
  return JSON.stringify(sorted(value));
}
