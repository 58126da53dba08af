import type { PostgresRepository } from '../fhir/repository.ts';
import { rewriteReconciliation } from './records.ts';
import { refuse } from './result.ts';
import type { BillingResult } from './result.ts';
import { findPayment, lockAccount, lockPaymentKey, savePayment } from './store.ts';

export interface SettlementInput {
  source: string;
  /** The settled payment's trace id. */
  originalTraceId: string;
  /** YYYY-MM-DD the processor settled it. */
  settlementDate: string;
  /** The processor reported a settlement error: the money may not arrive. */
  failed?: boolean;
}

export interface SettlementOutcome {
  status: 'updated' | 'unchanged';
  paymentId: string;
  paymentReconciliationId: string;
}

/**
 * The processor settled a payment (or could not): no money moves. The payment records the date,
 * shown on its PaymentReconciliation as the payment-settlement-date extension; a settlement error
 * sets PaymentReconciliation.outcome to `error` and says so in its disposition (a later successful
 * settlement clears it). An unknown payment is refused (not-found).
 */
export async function recordSettlement(repo: PostgresRepository, input: SettlementInput): Promise<BillingResult<SettlementOutcome>> {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(input.settlementDate)) return refuse('invalid', 'settlementDate must be YYYY-MM-DD', 'settlementDate');
  return repo.withTransaction(async (tx) => {
    const tenantId = tx.context.tenantId;
    const key = `trace:${input.originalTraceId}`;
    await lockPaymentKey(tx.conn, tenantId, key);
    const found = await findPayment(tx.conn, tenantId, key);
    if (!found) return refuse('not-found', `No payment with transaction id ${input.originalTraceId} to settle`, 'originalTraceId');
    await lockAccount(tx.conn, tenantId, found.patientRef);
    const payment = (await findPayment(tx.conn, tenantId, key))!;
    const failed = input.failed ?? false;
    const result = { paymentId: payment.id, paymentReconciliationId: payment.paymentReconciliationId };
    if (payment.settlementDate === input.settlementDate && payment.settlementFailed === failed) return { ok: true, value: { status: 'unchanged', ...result } };
    const row = { ...payment, settlementDate: input.settlementDate, settlementFailed: failed };
    await savePayment(tx.conn, tenantId, row);
    await rewriteReconciliation(tx, row);
    return { ok: true, value: { status: 'updated', ...result } };
  });
}
