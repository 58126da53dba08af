import type { PaymentReconciliation } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { ZERO, amount, sum } from './money.ts';
import type { Amount } from './money.ts';
import { PAYMENT_EXTENSIONS } from './resources.ts';
import { listPayments, reversalMovements } from './store.ts';
import { listReversals, listUnmatched } from './suspense-store.ts';

type Differ = (what: string, actual: Amount | undefined, expected: Amount) => void;

/**
 * checkBooks' part for what issue 10 added (check.ts calls it):
 * - each payment: reversedAmount = what its applied reversals gave back = its payment.reversed
 *   movements, never above its amount; voided ⇔ cancelled, and then reversed in full; its
 *   PaymentReconciliation's status, outcome and settlement date say the same as the row;
 * - each applied reversal: its movements = the split it recorded (credit balance, claim,
 *   allocations); a refund's, return's or chargeback's PaymentReconciliation has −amount in
 *   paymentAmount and its details, and is cancelled exactly when its payment was voided; a
 *   waiting or refused reversal moved nothing;
 * - each unmatched payment: waiting or discarded ones moved nothing (no payment with their
 *   identity); an applied one names the payment it became.
 */
export async function checkReversalsAndHolds(repo: PostgresRepository, differ: Differ, problems: string[]): Promise<void> {
  const tenantId = repo.context.tenantId;
  const conn = repo.conn;
  const payments = await listPayments(conn, tenantId);
  const byId = new Map(payments.map((p) => [p.id, p]));
  const reversals = await listReversals(conn, tenantId);

  for (const p of payments) {
    const mine = reversals.filter((r) => r.status === 'applied' && r.paymentId === p.id);
    differ(`reversed amount of payment ${p.id}`, p.reversedAmount, sum(mine.map((r) => r.amount)));
    if (p.reversedAmount.gt(p.amount)) problems.push(`payment ${p.id} is reversed by ${p.reversedAmount.toFixed(2)}, more than its ${p.amount.toFixed(2)}`);
    if (p.status === 'cancelled') differ(`reversed amount of voided payment ${p.id}`, p.reversedAmount, p.amount);
    if ((p.status === 'cancelled') !== mine.some((r) => r.kind === 'void')) problems.push(`payment ${p.id} is ${p.status} but its void is ${p.status === 'cancelled' ? 'missing' : 'recorded'}`);
    const pr = await repo.readResource<PaymentReconciliation>('PaymentReconciliation', p.paymentReconciliationId);
    if (pr.status !== p.status) problems.push(`PaymentReconciliation/${pr.id} is ${pr.status}, payment ${p.id} is ${p.status}`);
    if ((pr.outcome === 'error') !== p.settlementFailed) problems.push(`PaymentReconciliation/${pr.id} outcome ${pr.outcome} disagrees with the settlement of payment ${p.id}`);
    const settled = pr.extension?.find((e) => e.url === PAYMENT_EXTENSIONS.settlementDate)?.valueDate ?? null;
    if (settled !== p.settlementDate) problems.push(`PaymentReconciliation/${pr.id} shows settlement ${settled}, payment ${p.id} has ${p.settlementDate}`);
  }

  for (const r of reversals) {
    const moved = await reversalMovements(conn, tenantId, r.id);
    const m = (kind: string): Amount => moved.get(kind) ?? ZERO;
    if (r.status !== 'applied') {
      if (moved.size > 0) problems.push(`${r.status} reversal ${r.id} moved money`);
      continue;
    }
    const payment = r.paymentId ? byId.get(r.paymentId) : undefined;
    if (!payment) {
      problems.push(`reversal ${r.id} names no payment`);
      continue;
    }
    differ(`amount of reversal ${r.id}`, r.amount, m('payment.reversed'));
    differ(`split of reversal ${r.id}`, r.fromBalance.plus(r.fromApplied).plus(r.fromAllocations), r.amount);
    differ(`taken from the claim by reversal ${r.id}`, r.fromApplied, m('reversal.from-claim'));
    differ(`taken from allocations by reversal ${r.id}`, r.fromAllocations, m('allocation.reversed'));
    differ(`taken from the credit by reversal ${r.id}`, r.fromBalance.plus(r.fromAllocations), m('reversal.from-credit'));
    if (r.kind === 'void') {
      if (r.paymentReconciliationId !== payment.paymentReconciliationId) problems.push(`void ${r.id} names another PaymentReconciliation than its payment's`);
      continue;
    }
    const pr = await repo.readResource<PaymentReconciliation>('PaymentReconciliation', r.paymentReconciliationId ?? '');
    differ(`paymentAmount of PaymentReconciliation/${pr.id}`, amount(pr.paymentAmount.value ?? NaN), r.amount.negated());
    differ(`details of PaymentReconciliation/${pr.id}`, sum((pr.detail ?? []).map((d) => amount(d.amount?.value ?? NaN))), r.amount.negated());
    const expected = payment.status === 'cancelled' ? 'cancelled' : 'active';
    if (pr.status !== expected) problems.push(`PaymentReconciliation/${pr.id} of ${r.kind} ${r.id} is ${pr.status}; its payment is ${payment.status}`);
  }

  const keys = new Map(payments.map((p) => [p.paymentKey, p]));
  for (const u of await listUnmatched(conn, tenantId)) {
    const became = keys.get(u.paymentKey);
    if (u.status === 'applied' && (!became || became.id !== u.paymentId)) problems.push(`unmatched payment ${u.id} is applied but payment ${u.paymentId} is not its`);
    if (u.status !== 'applied' && became) problems.push(`unmatched payment ${u.id} is ${u.status} but payment ${became.id} has its identity`);
  }
}
