import { randomUUID } from 'node:crypto';
import type { Claim } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { account, changeLifecyclePaid, saveCredit } from './books.ts';
import { lifecycleClaims, responsibilityOf } from './claims.ts';
import { ZERO, fixed, min } from './money.ts';
import type { Amount } from './money.ts';
import { rewriteReconciliation } from './records.ts';
import { lifecycleAllocations, lifecyclePaymentKeys } from './remittance-store.ts';
import { accountSums, findPayment, lockLifecycle, recordMovement, savePayment } from './store.ts';

/**
 * The responsibility of a lifecycle went down (a payer's remittance says the patient owes less, or
 * reverses the response it owed on) below what the patient has paid on it: the excess goes back to
 * the patient as PatientCredit, newest money first: credit allocations to the lifecycle are
 * reversed into their credits, then what payments applied directly moves to each payment's credit
 * (created when it had none). No money leaves the patient; checkBooks' invariants hold (a payment's
 * applied + credited is still its amount). The caller holds the patient's account lock.
 * Returns what was released. `known`: a claim of the lifecycle the caller holds (lifecycleClaims).
 */
export async function releaseExcess(repo: PostgresRepository, lifecycleId: string, currency: string, known?: Claim): Promise<Amount> {
  const tenantId = repo.context.tenantId;
  const paid = await lockLifecycle(repo.conn, tenantId, lifecycleId, currency);
  const owed = (await responsibilityOf(repo, await lifecycleClaims(repo, lifecycleId, known), currency)).amount;
  let left = paid.minus(owed);
  if (!left.gt(ZERO)) return ZERO;
  const released = left;

  for (const a of await lifecycleAllocations(repo.conn, tenantId, lifecycleId)) {
    if (left.isZero()) break;
    const back = min(left, a.net);
    await recordMovement(repo.conn, tenantId, {
      kind: 'allocation.reversed', from: account.lifecycle(lifecycleId), to: account.credit(a.creditId), amount: back, currency,
      creditId: a.creditId, allocationId: a.allocationId, ...(a.claimId && { claimId: a.claimId }),
    });
    await changeLifecyclePaid(repo, lifecycleId, back.negated(), currency);
    await saveCredit(repo, a.creditId, currency);
    left = left.minus(back);
  }

  for (const key of await lifecyclePaymentKeys(repo.conn, tenantId, lifecycleId)) {
    if (left.isZero()) break;
    const p = (await findPayment(repo.conn, tenantId, key))!;
    const reversedFromClaim = (await accountSums(repo.conn, tenantId, account.payment(p.id), 'kind')).get('reversal.from-claim') ?? ZERO;
    const back = min(left, p.appliedAmount.minus(reversedFromClaim));
    if (!back.gt(ZERO)) continue;
    const isNew = p.patientCreditId === null;
    const creditId = p.patientCreditId ?? randomUUID();
    const common = { currency: p.currency, paymentId: p.id };
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'applied.reversed', from: account.lifecycle(lifecycleId), to: account.payment(p.id), amount: back, claimId: p.claimId });
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.credited', from: account.payment(p.id), to: account.credit(creditId), amount: back, creditId });
    await changeLifecyclePaid(repo, lifecycleId, back.negated(), currency);
    const row = { ...p, appliedAmount: p.appliedAmount.minus(back), creditedAmount: p.creditedAmount.plus(back), patientCreditId: creditId };
    await savePayment(repo.conn, tenantId, row);
    await rewriteReconciliation(repo, row);
    await saveCredit(repo, creditId, currency, isNew ? { create: { patient: { reference: p.patientRef }, paymentReconciliationId: p.paymentReconciliationId, created: new Date().toISOString() } } : {});
    left = left.minus(back);
  }
  if (!left.isZero()) throw new Error(`Lifecycle ${lifecycleId}: ${fixed(left, currency)} paid beyond its responsibility could not be released`);
  return released;
}
