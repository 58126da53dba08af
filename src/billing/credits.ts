import { OperationOutcomeError, getStatus } from '@medplum/core';
import type { Claim, Resource } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import type { PatientCredit } from '../profiles/index.ts';
import { allocateToLifecycle, creditBooks } from './books.ts';
import { lifecycleClaims, lifecycleIdOf, patientRefOf, relativeReference, responsibilityOf } from './claims.ts';
import { CURRENCY, ZERO, max, min } from './money.ts';
import type { Amount } from './money.ts';
import { refuse } from './result.ts';
import type { BillingResult } from './result.ts';
import { lockAccount, lockLifecycle } from './store.ts';

export interface AllocateCreditInput {
  creditId: string;
  /** The claim to apply the credit to: `Claim/<id>` (or an absolute URL ending so). */
  claim: string;
  /** How much; absent: as much as the balance and the claim's open responsibility allow. */
  amount?: Amount;
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
    if (input.amount !== undefined && !input.amount.gt(ZERO)) return refuse('invalid', 'amount must be positive', 'amount');

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
    const paid = await lockLifecycle(tx.conn, tenantId, lifecycleId);
    const { balance } = await creditBooks(tx, input.creditId);
    if (!balance.gt(ZERO)) return refuse('invalid', `PatientCredit/${input.creditId} has no balance left to allocate`);
    const responsibility = await responsibilityOf(tx, await lifecycleClaims(tx, lifecycleId));
    const open = max(ZERO, responsibility.amount.minus(paid));
    if (input.amount?.gt(balance)) {
      return refuse('invalid', `amount ${input.amount.toFixed(2)} exceeds the credit's balance of ${balance.toFixed(2)} ${CURRENCY}`, 'amount');
    }
    if (input.amount?.gt(open)) {
      return refuse('invalid', `amount ${input.amount.toFixed(2)} exceeds the open patient responsibility of ${open.toFixed(2)} ${CURRENCY} on Claim/${claimId}`, 'amount');
    }
    const value = input.amount ?? min(balance, open);
    if (value.isZero()) return refuse('invalid', `Claim/${claimId} has no open patient responsibility to allocate to`, 'claim');

    const credit = await allocateToLifecycle(tx, input.creditId, claim, lifecycleId, value);
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
