import { OperationOutcomeError, getStatus } from '@medplum/core';
import type { Claim, Resource } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import type { PatientCredit } from '../profiles/index.ts';
import { allocateToLifecycle, creditBooks } from './books.ts';
import { lifecycleClaims, lifecycleIdOf, patientRefOf, relativeReference, responsibilityOf } from './claims.ts';
import { currencyOf } from './currency.ts';
import { ZERO, amount, fixed, formatMoney, max, maxAmount, min } from './money.ts';
import type { Amount } from './money.ts';
import { refuse } from './result.ts';
import type { BillingResult } from './result.ts';
import { lockAccount, lockLifecycle } from './store.ts';

export interface AllocateCreditInput {
  creditId: string;
  /** The claim to apply the credit to: `Claim/<id>` (or an absolute URL ending so). */
  claim: string;
  /**
   * How much, as sent (rounded here, half-even to the book currency's minor unit); absent: as much
   * as the balance and the claim's open responsibility allow.
   */
  amount?: Amount;
  /** The currency the amount is stated in; absent: the book currency. Another is refused. */
  currency?: string;
}

export interface AllocateCreditOutcome {
  credit: PatientCredit;
  allocated: Amount;
  claimId: string;
  claimLifecycleId: string;
}

/**
 * Applies (part of) a PatientCredit to a claim's open patient responsibility, the way a payment
 * would: up to responsibility − patientPaidAmount of the claim's lifecycle, which every claim of it
 * then carries. The credit's balance goes down and an allocation entry records claim, amount and
 * date. Refused (as a value, nothing written): an unknown credit or claim (not-found); a claim of
 * another patient, a reversed or empty credit, an amount above the balance or the open
 * responsibility, nothing open to apply to (invalid). One transaction; serialized with the
 * patient's payments by the account lock.
 */
export async function allocateCredit(repo: PostgresRepository, input: AllocateCreditInput): Promise<BillingResult<AllocateCreditOutcome>> {
  return repo.withTransaction(async (tx) => {
    const tenantId = tx.context.tenantId;
    const claimRef = relativeReference(input.claim);
    const [claimType, claimId] = claimRef.split('/');
    if (claimType !== 'Claim' || !claimId) return refuse('invalid', `claim must reference a Claim (Claim/<id>), not ${input.claim}`, 'claim');
    const currency = await currencyOf(tx, input.currency, 'amount');
    if (!currency.ok) return currency;
    const cur = currency.value;
    const wanted = input.amount === undefined ? undefined : amount(input.amount, cur);
    if (wanted !== undefined && !wanted.gt(ZERO)) return refuse('invalid', `amount must be positive after rounding to the minor unit of ${cur}`, 'amount');
    if (wanted?.gt(maxAmount(cur))) return refuse('invalid', `amount must be at most ${fixed(maxAmount(cur), cur)}`, 'amount');

    const before = await readOptional<PatientCredit>(tx, 'PatientCredit', input.creditId);
    if (!before) return refuse('not-found', `PatientCredit/${input.creditId} not found`);
    const claim = await readOptional<Claim>(tx, 'Claim', claimId);
    if (!claim) return refuse('not-found', `Claim/${claimId} not found`, 'claim');
    const patientRef = relativeReference(before.patient.reference ?? '');
    if (patientRefOf(claim) !== patientRef) {
      return refuse('invalid', `Claim/${claimId} is for ${patientRefOf(claim)}; PatientCredit/${input.creditId} belongs to ${patientRef}`, 'claim');
    }

    await lockAccount(tx.conn, tenantId, patientRef);
    const lifecycleId = lifecycleIdOf(claim);
    const paid = await lockLifecycle(tx.conn, tenantId, lifecycleId, cur);
    const { balance } = await creditBooks(tx, input.creditId);
    if (!balance.gt(ZERO)) return refuse('invalid', `PatientCredit/${input.creditId} has no balance left to allocate`);
    const responsibility = await responsibilityOf(tx, await lifecycleClaims(tx, lifecycleId), cur);
    const open = max(ZERO, responsibility.amount.minus(paid));
    if (wanted?.gt(balance)) {
      return refuse('invalid', `amount ${fixed(wanted, cur)} exceeds the credit's balance of ${formatMoney(balance, cur)}`, 'amount');
    }
    if (wanted?.gt(open)) {
      return refuse('invalid', `amount ${fixed(wanted, cur)} exceeds the open patient responsibility of ${formatMoney(open, cur)} on Claim/${claimId}`, 'amount');
    }
    const value = wanted ?? min(balance, open);
    if (value.isZero()) return refuse('invalid', `Claim/${claimId} has no open patient responsibility to allocate to`, 'claim');

    const credit = await allocateToLifecycle(tx, input.creditId, claim, lifecycleId, value, cur);
    return { ok: true, value: { credit, allocated: value, claimId, claimLifecycleId: lifecycleId } };
  });
}

async function readOptional<T>(repo: PostgresRepository, type: string, id: string): Promise<T | undefined> {
  try {
    return (await repo.readResource<Resource>(type, id)) as unknown as T;
  } catch (err) {
    const status = err instanceof OperationOutcomeError ? getStatus(err.outcome) : undefined;
    if (status === 404 || status === 410) return undefined;
    throw err;
  }
}
