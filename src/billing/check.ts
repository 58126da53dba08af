import type { PaymentReconciliation, Resource } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { EXTENSION_URLS } from '../profiles/index.ts';
import type { PatientCredit } from '../profiles/index.ts';
import { account, creditBooks } from './books.ts';
import { lifecycleClaims } from './claims.ts';
import { ZERO, amount, sum } from './money.ts';
import type { Amount } from './money.ts';
import { checkRemittances } from './check-remittances.ts';
import { checkReversalsAndHolds } from './check-reversals.ts';
import { creditStatus } from './resources.ts';
import { accountBalance, accountSums, allBalances, creditAllocations, lifecycleRows, listPayments, unbalancedMovements } from './store.ts';

/**
 * Reconciles a tenant's books: everything billing mirrors must equal what the ledger sums to.
 * Returns the discrepancies (none when the books are right):
 * - every movement's two rows sum to zero, and every payment's transit account is back at zero;
 * - each lifecycle's patientPaidAmount = its ledger account = the patient-paid-amount extension
 *   on every claim of it; never negative;
 * - each payment: amount = received, applied and credited as the ledger has them, amount =
 *   applied + credited, and its PaymentReconciliation says the same;
 * - each credit: PatientCredit amount, balance, status and allocations = the ledger's; never negative;
 * - reversals, cancelled reconciliations, settlement and unmatched payments: check-reversals.ts;
 * - payer remittances: check-remittances.ts.
 */
export async function checkBooks(repo: PostgresRepository): Promise<string[]> {
  const tenantId = repo.context.tenantId;
  const conn = repo.conn;
  const problems: string[] = [];
  const differ = (what: string, actual: Amount | undefined, expected: Amount): void => {
    if (actual === undefined || !actual.eq(expected)) problems.push(`${what} is ${actual?.toFixed(2) ?? 'missing'}, the ledger says ${expected.toFixed(2)}`);
  };

  for (const m of await unbalancedMovements(conn, tenantId)) problems.push(`movement ${m} does not balance`);
  const balances = await allBalances(conn, tenantId);
  for (const b of balances) {
    if (b.accountType === 'payment' && !b.total.isZero()) problems.push(`payment ${b.accountId} holds ${b.total.toFixed(2)} in transit`);
    if ((b.accountType === 'lifecycle' || b.accountType === 'credit') && b.total.isNegative()) problems.push(`${b.accountType} ${b.accountId} is negative`);
  }

  for (const l of await lifecycleRows(conn, tenantId)) {
    const ledger = await accountBalance(conn, tenantId, account.lifecycle(l.lifecycleId));
    differ(`patientPaidAmount of lifecycle ${l.lifecycleId}`, l.paid, ledger);
    for (const claim of await lifecycleClaims(repo, l.lifecycleId)) {
      const ext = claim.extension?.find((e) => e.url === EXTENSION_URLS.patientPaidAmount)?.valueMoney;
      if (ext === undefined && ledger.isZero()) continue;
      differ(`patient-paid-amount of Claim/${claim.id}`, ext?.value === undefined ? undefined : amount(ext.value), ledger);
    }
  }

  for (const p of await listPayments(conn, tenantId)) {
    const byKind = await accountSums(conn, tenantId, account.payment(p.id), 'kind');
    const k = (kind: string): Amount => byKind.get(kind) ?? ZERO;
    differ(`amount of payment ${p.id}`, p.amount, k('payment.received').plus(k('payment.reduced')));
    differ(`applied amount of payment ${p.id}`, p.appliedAmount, k('payment.applied').plus(k('applied.reversed')).negated());
    differ(`credited amount of payment ${p.id}`, p.creditedAmount, k('payment.credited').plus(k('credit.reduced')).negated());
    differ(`applied + credited of payment ${p.id}`, p.appliedAmount.plus(p.creditedAmount), p.amount);
    const pr = await repo.readResource<PaymentReconciliation>('PaymentReconciliation', p.paymentReconciliationId);
    const detail = (code: string): Amount | undefined => {
      const d = pr.detail?.find((x) => x.type?.coding?.some((c) => c.code === code));
      return d?.amount?.value === undefined ? undefined : amount(d.amount.value);
    };
    differ(`paymentAmount of PaymentReconciliation/${pr.id}`, amount(pr.paymentAmount.value ?? NaN), p.amount);
    differ(`payment detail of PaymentReconciliation/${pr.id}`, detail('payment'), p.appliedAmount);
    differ(`advance detail of PaymentReconciliation/${pr.id}`, detail('advance') ?? ZERO, p.creditedAmount);
  }

  for (const b of balances.filter((x) => x.accountType === 'credit')) {
    const credit = (await repo.readResource<Resource>('PatientCredit', b.accountId)) as unknown as PatientCredit;
    const books = await creditBooks(repo, b.accountId);
    differ(`balance of PatientCredit/${credit.id}`, amount(credit.balance.value ?? NaN), books.balance);
    differ(`amount of PatientCredit/${credit.id}`, amount(credit.amount.value ?? NaN), books.amount);
    if (credit.status !== creditStatus(books.amount, books.balance)) problems.push(`status of PatientCredit/${credit.id} is ${credit.status}`);
    const nets = new Map((await creditAllocations(conn, tenantId, b.accountId)).map((a) => [a.allocationId, a.net]));
    const listed = credit.allocation ?? [];
    for (const a of listed) differ(`allocation ${a.id} of PatientCredit/${credit.id}`, amount(a.amount.value ?? NaN), nets.get(a.id ?? '') ?? ZERO);
    const allocated = sum([...nets.values()]);
    differ(`allocated + balance of PatientCredit/${credit.id}`, allocated.plus(books.balance), books.amount);
    const unlisted = [...nets.entries()].filter(([id, net]) => net.gt(ZERO) && !listed.some((a) => a.id === id));
    for (const [id] of unlisted) problems.push(`allocation ${id} of PatientCredit/${credit.id} is in the ledger but not on the resource`);
  }
  await checkReversalsAndHolds(repo, differ, problems);
  await checkRemittances(repo, differ, problems);
  return problems;
}
