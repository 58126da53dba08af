import type { ClaimResponse, PaymentReconciliation } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { amount, sum } from './money.ts';
import type { Amount } from './money.ts';
import { listRemittances, remittanceClaims } from './remittance-store.ts';

type Differ = (what: string, actual: Amount | undefined, expected: Amount) => void;

/**
 * checkBooks' part for payer remittances (check.ts calls it): each remittance's
 * PaymentReconciliation shows its payment amount and one detail per claim payment (its amount,
 * and the Claim and ClaimResponse once applied), and its details sum to the payment; a claim
 * payment that waits names no claim and no ClaimResponse; an applied one names a ClaimResponse
 * on its Claim (a reversal: that response is cancelled).
 */
export async function checkRemittances(repo: PostgresRepository, differ: Differ, problems: string[]): Promise<void> {
  const tenantId = repo.context.tenantId;
  for (const r of await listRemittances(repo.conn, tenantId)) {
    const pr = await repo.readResource<PaymentReconciliation>('PaymentReconciliation', r.paymentReconciliationId);
    const signed = r.paymentAmount;
    differ(`paymentAmount of PaymentReconciliation/${pr.id}`, amount(pr.paymentAmount.value ?? NaN), signed);
    const details = pr.detail ?? [];
    differ(`sum of the details of PaymentReconciliation/${pr.id}`, sum(details.map((d) => amount(d.amount?.value ?? 0))), signed);
    const claims = await remittanceClaims(repo.conn, tenantId, r.id);
    for (const [i, c] of claims.entries()) {
      const d = details[i];
      const what = `claim payment ${c.seq} (${c.billId}) of remittance ${r.id}`;
      differ(`${what} on PaymentReconciliation/${pr.id}`, d?.amount?.value === undefined ? undefined : amount(d.amount.value), c.paidAmount);
      if (c.status === 'waiting') {
        if (c.claimId || c.claimResponseId || d?.request) problems.push(`${what} waits but names a claim`);
        continue;
      }
      if (d?.request?.reference !== `Claim/${c.claimId}`) problems.push(`${what} is applied but its detail does not name Claim/${c.claimId}`);
      if (!c.claimResponseId) continue; // a reversal that found nothing to reverse
      const cr = await repo.readResource<ClaimResponse>('ClaimResponse', c.claimResponseId);
      if (cr.request?.reference !== `Claim/${c.claimId}`) problems.push(`ClaimResponse/${cr.id} of ${what} is not on Claim/${c.claimId}`);
      if ((c.adjudication as { reversal?: boolean }).reversal && cr.status !== 'cancelled') problems.push(`ClaimResponse/${cr.id} reversed by ${what} is ${cr.status}`);
    }
  }
}
