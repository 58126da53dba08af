import { randomUUID } from 'node:crypto';
import type { Claim, Reference, Resource } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import type { PatientCredit, PatientCreditAllocation } from '../profiles/index.ts';
import { stampPaidAmount } from './claims.ts';
import { ZERO, fhirMoney, fixed, min } from './money.ts';
import type { Amount } from './money.ts';
import { newPatientCredit, withCreditState } from './resources.ts';
import { accountBalance, accountSums, creditAllocations, lockLifecycle, recordMovement, setLifecyclePaid } from './store.ts';
import type { Account } from './store.ts';

/**
 * The moves every command is made of, one home per kind of movement: a payment received
 * (receivePayment), a resend's reduction (reducePayment), a credit allocated (allocateToLifecycle),
 * a reversal given back (giveBackPayment). Each records its ledger rows and keeps what mirrors the
 * ledger in step in the same transaction: billing_lifecycle.patient_paid_amount and the Claims'
 * patient-paid-amount extension, the PatientCredit's amount, balance and allocations. Callers hold
 * the patient's account lock (store.lockAccount) and pass a repository in the transaction.
 */

export const account = {
  payer: (patientRef: string): Account => ({ type: 'payer', id: patientRef }),
  payment: (id: string): Account => ({ type: 'payment', id }),
  lifecycle: (id: string): Account => ({ type: 'lifecycle', id }),
  credit: (id: string): Account => ({ type: 'credit', id }),
};

/**
 * Adds `delta` (negative to take back) to the lifecycle's patientPaidAmount and writes it on every
 * claim of the lifecycle (a new version of each claim whose value changes). Returns the new total.
 */
export async function changeLifecyclePaid(repo: PostgresRepository, lifecycleId: string, delta: Amount, currency: string): Promise<Amount> {
  const tenantId = repo.context.tenantId;
  const paid = (await lockLifecycle(repo.conn, tenantId, lifecycleId, currency)).plus(delta);
  if (paid.isNegative()) throw new Error(`Lifecycle ${lifecycleId} would be paid ${fixed(paid, currency)}`);
  if (!delta.isZero()) await setLifecyclePaid(repo.conn, tenantId, lifecycleId, paid);
  await stampPaidAmount(repo, lifecycleId, paid, currency);
  return paid;
}

/** A credit as the ledger has it. */
export interface CreditBooks {
  /** What was credited to it, less what was taken back. */
  amount: Amount;
  /** What is left to allocate. */
  balance: Amount;
}

export async function creditBooks(repo: PostgresRepository, creditId: string): Promise<CreditBooks> {
  const tenantId = repo.context.tenantId;
  const byKind = await accountSums(repo.conn, tenantId, account.credit(creditId), 'kind');
  const amount = (byKind.get('payment.credited') ?? ZERO).plus(byKind.get('credit.reduced') ?? ZERO).plus(byKind.get('reversal.from-credit') ?? ZERO);
  return { amount, balance: await accountBalance(repo.conn, tenantId, account.credit(creditId)) };
}

/**
 * Writes the ledger's view of the credit into the PatientCredit resource (amount, balance, status,
 * allocations with what is still allocated), creating it if `create` is given. Allocation entries
 * keep their id (the ledger's allocation id) and date; one reversed to zero is dropped.
 */
export async function saveCredit(
  repo: PostgresRepository,
  creditId: string,
  currency: string,
  options: { create?: { patient: Reference; paymentReconciliationId: string; created: string }; added?: PatientCreditAllocation } = {},
): Promise<PatientCredit> {
  const books = await creditBooks(repo, creditId);
  const current = options.create
    ? newPatientCredit({ id: creditId, patient: options.create.patient, amount: books.amount, currency, paymentReconciliationId: options.create.paymentReconciliationId, created: options.create.created })
    : await repo.readResource<Resource>('PatientCredit', creditId).then((r) => r as unknown as PatientCredit);
  const nets = new Map((await creditAllocations(repo.conn, repo.context.tenantId, creditId)).map((a) => [a.allocationId, a.net]));
  const entries = [...(current.allocation ?? []), ...(options.added ? [options.added] : [])];
  const allocation = entries
    .map((a) => ({ ...a, amount: fhirMoney(nets.get(a.id ?? '') ?? ZERO, currency) }))
    .filter((a) => nets.get(a.id ?? '')?.gt(ZERO));
  const next = withCreditState(current, { amount: books.amount, balance: books.balance, allocation }, currency);
  const write = options.create
    ? repo.createResource(next as unknown as Resource, { assignedId: true })
    : repo.updateResource(next as unknown as Resource);
  return (await write) as unknown as PatientCredit;
}

/** The accounts a payment's money moves between. */
export interface PaymentAccounts {
  id: string;
  patientRef: string;
  lifecycleId: string;
  claimId: string;
  appliedAmount: Amount;
  creditedAmount: Amount;
  patientCreditId: string | null;
  /** The book currency the payment was made in. */
  currency: string;
}

/**
 * A payment's money arriving (a new payment, or a resend's increase): `applied + credited` from
 * the payer, `applied` on to its lifecycle (re-stamping its claims), `credited` to its credit.
 */
export async function receivePayment(repo: PostgresRepository, p: PaymentAccounts, applied: Amount, credited: Amount): Promise<void> {
  const tenantId = repo.context.tenantId;
  const common = { currency: p.currency, paymentId: p.id };
  await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.received', from: account.payer(p.patientRef), to: account.payment(p.id), amount: applied.plus(credited) });
  await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.applied', from: account.payment(p.id), to: account.lifecycle(p.lifecycleId), amount: applied, claimId: p.claimId });
  if (credited.gt(ZERO)) {
    if (!p.patientCreditId) throw new Error(`Payment ${p.id} credits ${fixed(credited, p.currency)} without a PatientCredit`);
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.credited', from: account.payment(p.id), to: account.credit(p.patientCreditId), amount: credited, creditId: p.patientCreditId });
  }
  await changeLifecyclePaid(repo, p.lifecycleId, applied, p.currency);
}

/**
 * A resend that shrank a payment by `value`: given back last in first out: its credit (the
 * unallocated balance, then its allocations, newest first, taken back from those lifecycles), then
 * what it applied to its claim. Returns how much came from each.
 */
export async function reducePayment(repo: PostgresRepository, p: PaymentAccounts, value: Amount): Promise<{ fromCredit: Amount; fromApplied: Amount }> {
  const tenantId = repo.context.tenantId;
  const common = { currency: p.currency, paymentId: p.id };
  const fromCredit = p.patientCreditId ? await takeBackFromCredit(repo, p.patientCreditId, p.id, min(value, p.creditedAmount), p.currency) : ZERO;
  const fromApplied = min(value.minus(fromCredit), p.appliedAmount);
  if (!fromCredit.plus(fromApplied).eq(value)) throw new Error(`Payment ${p.id}: ${fixed(value.minus(fromCredit).minus(fromApplied), p.currency)} could not be given back`);
  await recordMovement(repo.conn, tenantId, { ...common, kind: 'applied.reversed', from: account.lifecycle(p.lifecycleId), to: account.payment(p.id), amount: fromApplied, claimId: p.claimId });
  await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.reduced', from: account.payment(p.id), to: account.payer(p.patientRef), amount: value });
  await changeLifecyclePaid(repo, p.lifecycleId, fromApplied.negated(), p.currency);
  return { fromCredit, fromApplied };
}

/**
 * Takes `wanted` back out of a credit, for a payment that shrank: first from its unallocated
 * balance, then by reversing its allocations, newest first (each reversal takes the money back
 * from that lifecycle, whose claims are re-stamped). Returns what it took, at most the credit's amount.
 */
async function takeBackFromCredit(repo: PostgresRepository, creditId: string, paymentId: string, wanted: Amount, currency: string): Promise<Amount> {
  const tenantId = repo.context.tenantId;
  let left = wanted;
  let taken = ZERO;
  const reduce = async (value: Amount): Promise<void> => {
    await recordMovement(repo.conn, tenantId, {
      kind: 'credit.reduced', from: account.credit(creditId), to: account.payment(paymentId), amount: value, currency, paymentId, creditId,
    });
    left = left.minus(value);
    taken = taken.plus(value);
  };
  const fromBalance = min(left, (await creditBooks(repo, creditId)).balance);
  if (fromBalance.gt(ZERO)) await reduce(fromBalance);
  await reverseAllocations(repo, creditId, currency, left, reduce);
  return taken;
}

/**
 * Reverses a credit's allocations, newest first, up to `wanted`: each takes its money back from
 * that lifecycle (whose claims are re-stamped) into the credit, and `moveOn` then moves it out of
 * the credit. Returns what was reversed.
 */
async function reverseAllocations(
  repo: PostgresRepository,
  creditId: string,
  currency: string,
  wanted: Amount,
  moveOn: (back: Amount) => Promise<void>,
  reversalId?: string,
): Promise<Amount> {
  const tenantId = repo.context.tenantId;
  let total = ZERO;
  for (const a of await creditAllocations(repo.conn, tenantId, creditId)) {
    if (total.eq(wanted)) break;
    const back = min(wanted.minus(total), a.net);
    if (back.isZero()) continue;
    await recordMovement(repo.conn, tenantId, {
      kind: 'allocation.reversed', from: account.lifecycle(a.lifecycleId), to: account.credit(creditId), amount: back, currency,
      creditId, allocationId: a.allocationId, ...(reversalId && { reversalId }), ...(a.claimId && { claimId: a.claimId }),
    });
    await changeLifecyclePaid(repo, a.lifecycleId, back.negated(), currency);
    await moveOn(back);
    total = total.plus(back);
  }
  return total;
}

/** Where a reversal's money came back from. */
export interface GivenBack {
  fromBalance: Amount;
  fromApplied: Amount;
  fromAllocations: Amount;
}

/**
 * A reversal's movements: `value` of payment `p` goes back to the payer, taken from (1) the
 * unallocated balance of its PatientCredit, (2) what it applied to its claim's lifecycle (less what
 * earlier reversals took from there), (3) its credit's allocations to claims, newest first. The
 * caller has checked that `value` is at most what remains of the payment, so (1)+(2)+(3) cover it.
 */
export async function giveBackPayment(
  repo: PostgresRepository,
  p: PaymentAccounts,
  reversalId: string,
  value: Amount,
): Promise<GivenBack> {
  const tenantId = repo.context.tenantId;
  const common = { currency: p.currency, paymentId: p.id, reversalId };
  let left = value;
  const given: GivenBack = { fromBalance: ZERO, fromApplied: ZERO, fromAllocations: ZERO };
  const fromCredit = async (creditId: string, v: Amount): Promise<void> => {
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'reversal.from-credit', from: account.credit(creditId), to: account.payment(p.id), amount: v, creditId });
    left = left.minus(v);
  };
  if (p.patientCreditId) {
    given.fromBalance = min(left, (await creditBooks(repo, p.patientCreditId)).balance);
    await fromCredit(p.patientCreditId, given.fromBalance);
  }
  const earlier = (await accountSums(repo.conn, tenantId, account.payment(p.id), 'kind')).get('reversal.from-claim') ?? ZERO;
  given.fromApplied = min(left, p.appliedAmount.minus(earlier));
  if (given.fromApplied.gt(ZERO)) {
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'reversal.from-claim', from: account.lifecycle(p.lifecycleId), to: account.payment(p.id), amount: given.fromApplied, claimId: p.claimId });
    await changeLifecyclePaid(repo, p.lifecycleId, given.fromApplied.negated(), p.currency);
    left = left.minus(given.fromApplied);
  }
  if (p.patientCreditId && left.gt(ZERO)) {
    const creditId = p.patientCreditId;
    given.fromAllocations = await reverseAllocations(repo, creditId, p.currency, left, (back) => fromCredit(creditId, back), reversalId);
  }
  if (!left.isZero()) throw new Error(`Payment ${p.id}: ${fixed(left, p.currency)} of a reversal could not be given back`);
  await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.reversed', from: account.payment(p.id), to: account.payer(p.patientRef), amount: value });
  return given;
}

/**
 * `value` of a credit applied to a claim's lifecycle: the credit's balance goes down, the
 * lifecycle's total (and its claims' stamps) up, and the PatientCredit lists the allocation.
 */
export async function allocateToLifecycle(repo: PostgresRepository, creditId: string, claim: Claim, lifecycleId: string, value: Amount, currency: string): Promise<PatientCredit> {
  const allocation = newAllocation(claim, value, currency, new Date().toISOString());
  await recordMovement(repo.conn, repo.context.tenantId, {
    kind: 'credit.allocated', from: account.credit(creditId), to: account.lifecycle(lifecycleId), amount: value, currency,
    creditId, allocationId: allocation.id, claimId: claim.id!,
  });
  await changeLifecyclePaid(repo, lifecycleId, value, currency);
  return saveCredit(repo, creditId, currency, { added: allocation });
}

function newAllocation(claim: Claim, value: Amount, currency: string, date: string): PatientCreditAllocation {
  return { id: randomUUID(), claim: { reference: `Claim/${claim.id}` }, amount: fhirMoney(value, currency), date };
}
