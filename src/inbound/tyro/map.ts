import type { AdjudicatedItem, AdjudicationAmount, AdjudicationCategory, AdjudicationInput } from '../../billing/index.ts';
import { MAX_AMOUNT, amount } from '../../billing/index.ts';
import { CANONICAL_BASE } from '../../profiles/index.ts';
import { amountOf, transactionIdOf } from '../../formats/tyro.ts';
import type { AmountField, TyroEvent, TyroTransaction } from '../../formats/tyro.ts';

/**
 * A Tyro event as billing's adjudication command (billing never learns Tyro's format). The state
 * an event reports, and how far along it is (research §4, seed 004):
 *   open (outstanding, pending)  0          approved               1
 *   completed, rejected, cancelled 2 final  paid                   3 final
 * so paid may follow approved or completed, and nothing moves a final state back (rejected after
 * completed, approved after paid: 200, no change). invoiceCompleted's businessStatus decides:
 * completed = approved and final, declined = rejected, outstanding = still open.
 */
export const TYRO_TRANSACTION_SYSTEM = `${CANONICAL_BASE}/identifier/tyro-transaction-id`;
export const TYRO_FUNDER_SYSTEM = `${CANONICAL_BASE}/identifier/tyro-funder`;

type State = 'open' | 'approved' | 'completed' | 'rejected' | 'cancelled' | 'paid';
const STAGE: Record<State, { stage: number; final: boolean }> = {
  open: { stage: 0, final: false },
  approved: { stage: 1, final: false },
  completed: { stage: 2, final: true },
  rejected: { stage: 2, final: true },
  cancelled: { stage: 2, final: true },
  paid: { stage: 3, final: true },
};

const FUNDER_NAMES: Record<string, string> = { medicare: 'Medicare', dva: 'DVA', hicaps: 'HICAPS', icare: 'icare', ghs: 'GHS', 'patient-funded': 'Patient funded' };

export function stateOf(event: TyroEvent, t: TyroTransaction): State {
  switch (event) {
    case 'healthFundApprovedInvoice':
    case 'memberApprovedInvoice':
      return 'approved';
    case 'healthFundPaidInvoice':
    case 'medipassPaidInvoice':
      return 'paid';
    case 'healthFundRejectedInvoice':
    case 'memberRejectedInvoice':
      return 'rejected';
    case 'invoiceCancelled':
    case 'medipassAutoCancelledInvoice':
      return 'cancelled';
    case 'invoiceCreated':
      return 'open';
    case 'invoiceCompleted':
      return t.businessStatus === 'declined' ? 'rejected' : t.businessStatus === 'outstanding' ? 'open' : t.businessStatus === 'cancelled' ? 'cancelled' : 'completed';
  }
}

const CATEGORY: Record<AmountField, AdjudicationCategory> = {
  amountFee: 'submitted',
  amountExpectedBenefit: 'benefit',
  amountActualBenefit: 'benefit',
  amountGap: 'memberliability',
};

export type Mapped = { ok: true; input: AdjudicationInput; state: State } | { ok: false; problem: string };

export function toAdjudication(event: TyroEvent, t: TyroTransaction, source: { claimIdentifierSystem: string | null; funder: string }): Mapped {
  const state = stateOf(event, t);
  const amounts = (record: Record<string, unknown>, where: string): AdjudicationAmount[] | string => {
    const out: AdjudicationAmount[] = [];
    for (const field of ['amountFee', 'amountActualBenefit', 'amountExpectedBenefit', 'amountGap'] as const) {
      const value = amountOf(record, field);
      if (typeof value === 'object') return `${where}: ${value.error}`;
      if (value === undefined) continue;
      const a = amount(value);
      if (a.gt(MAX_AMOUNT)) return `${where}.${field} is too large`;
      // The actual benefit, once known, is the benefit; the expected one only stands in for it.
      if (field === 'amountExpectedBenefit' && out.some((x) => x.category === 'benefit')) continue;
      out.push({ category: CATEGORY[field], amount: a });
    }
    return out;
  };

  const items: AdjudicatedItem[] = [];
  const totals = new Map<AdjudicationCategory, ReturnType<typeof amount>>();
  const add = (list: AdjudicationAmount[]) => {
    for (const a of list) totals.set(a.category, (totals.get(a.category) ?? amount(0)).plus(a.amount));
  };
  for (const [ci, claim] of t.claims.entries()) {
    const own = amounts(claim, `claims[${ci}]`);
    if (typeof own === 'string') return { ok: false, problem: own };
    const itemAmounts: AdjudicationAmount[] = [];
    for (const [ii, item] of claim.claimItems.entries()) {
      const list = amounts(item, `claims[${ci}].claimItems[${ii}]`);
      if (typeof list === 'string') return { ok: false, problem: list };
      itemAmounts.push(...list);
      const decision = [item.status ?? claim.status, item.statusDescription, item.gatewayCode && `gateway code ${item.gatewayCode}`].filter(Boolean).join('; ');
      items.push({ sequence: items.length + 1, amounts: list, ...(decision && { decision }) });
    }
    // A claim's own amounts count when its items carry none (the docs show both levels).
    add(itemAmounts.length > 0 ? itemAmounts : own);
  }

  const funderCode = typeof t.funder === 'string' ? t.funder.toLowerCase() : (t.funder?.code?.toLowerCase() ?? source.funder);
  const funderName = (typeof t.funder === 'object' && t.funder?.name) || FUNDER_NAMES[funderCode] || funderCode;
  const id = transactionIdOf(t);
  const identifier = { system: TYRO_TRANSACTION_SYSTEM, value: id };
  const benefit = totals.get('benefit') ?? amount(0);
  const asOf = new Date(t.modified).toISOString();
  return {
    ok: true,
    state,
    input: {
      source: 'tyro',
      billId: t.invoiceReference,
      ...(source.claimIdentifierSystem && { claimIdSystem: source.claimIdentifierSystem }),
      identifier,
      asOf,
      ...STAGE[state],
      outcome: outcomeOf(state, t),
      disposition: dispositionOf(event, t),
      insurer: { identifier: { system: TYRO_FUNDER_SYSTEM, value: funderCode }, name: funderName },
      items,
      totals: (['submitted', 'benefit', 'memberliability'] as const).filter((c) => totals.has(c)).map((c) => ({ category: c, amount: totals.get(c)! })),
      ...(state === 'paid' && { payment: { identifier, amount: benefit, date: asOf.slice(0, 10) } }),
      ...(state === 'cancelled' && { status: 'cancelled' as const }),
      whenClaimUnknown: 'hold',
      // Billing refuses another currency than the tenant's books (400) and rounds to its minor unit.
      ...(t.currencyCode && { currency: t.currencyCode.toUpperCase() }),
    },
  };
}

/** complete when every claim is approved, partial when some are, error when none are (or rejected), queued while pending. */
function outcomeOf(state: State, t: TyroTransaction): AdjudicationInput['outcome'] {
  if (state === 'rejected' || state === 'cancelled') return 'error';
  if (state === 'open') return 'queued';
  const statuses = t.claims.map((c) => c.status).filter(Boolean);
  const approved = statuses.filter((s) => s === 'approved').length;
  if (statuses.length === 0 || approved === statuses.length) return 'complete';
  if (approved > 0) return 'partial';
  return statuses.every((s) => s === 'rejected') ? 'error' : 'queued';
}

function dispositionOf(event: TyroEvent, t: TyroTransaction): string {
  const claims = t.claims.map((c, i) => `claim ${i + 1} ${c.status ?? 'no status'}${c.statusDescription ? ` (${c.statusDescription})` : ''}`);
  return [`Tyro ${event}`, t.businessStatus && `businessStatus ${t.businessStatus}`, ...claims].filter(Boolean).join('; ').slice(0, 1000);
}
