import type { PaymentReconciliation } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { paymentReconciliation } from './resources.ts';
import type { PaymentRow } from './store.ts';

/**
 * A payment's PaymentReconciliation is a view of its row (store.PaymentRow): every command that
 * changes the row (a resend, a void, a settlement) writes it again through here.
 */
export function reconciliationOf(row: PaymentRow, created: string): PaymentReconciliation {
  return paymentReconciliation({
    id: row.paymentReconciliationId,
    created,
    paymentDate: row.paymentDate,
    amount: row.amount,
    currency: row.currency,
    applied: row.appliedAmount,
    credited: row.creditedAmount,
    method: row.paymentMethod,
    traceId: row.paymentTraceId,
    claimId: row.claimId,
    claimResponseId: row.claimResponseId,
    patient: { reference: row.patientRef },
    lifecycleId: row.lifecycleId,
    status: row.status,
    instrument: row.instrument,
    identifiers: row.identifiers,
    settlementDate: row.settlementDate,
    settlementFailed: row.settlementFailed,
  });
}

export async function createReconciliation(repo: PostgresRepository, row: PaymentRow): Promise<void> {
  await repo.createResource<PaymentReconciliation>(reconciliationOf(row, new Date().toISOString()), { assignedId: true });
}

/** Writes the row's view again, keeping `created`; no new version when nothing changed. */
export async function rewriteReconciliation(repo: PostgresRepository, row: PaymentRow): Promise<void> {
  const current = await repo.readResource<PaymentReconciliation>('PaymentReconciliation', row.paymentReconciliationId);
  const next = { ...reconciliationOf(row, current.created), meta: current.meta };
  const { meta: _a, ...a } = current;
  const { meta: _b, ...b } = next;
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  await repo.updateResource<PaymentReconciliation>(next);
}
