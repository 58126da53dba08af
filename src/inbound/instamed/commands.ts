import { CURRENCY, applyPatientPayment, recordSettlement, reversePayment } from '../../billing/index.ts';
import type { PaymentIdentifier, PaymentInstrument, Refusal, ReversalKind } from '../../billing/index.ts';
import type { PostgresRepository } from '../../fhir/repository.ts';
import type { EventStatus } from '../journal.ts';
import type { Reader } from './fields.ts';
import type { Message } from './message.ts';
import { INSTAMED_PAYMENT_PLAN_SYSTEM, savePaymentPlan } from './plans.ts';

/**
 * What an InstaMed message does to the books: the billing command of its trigger, and the one-line
 * answer (the sender shows it as the posting message). Runs inside the route's transaction, after
 * the journal's dedupe lock. A refusal from billing has moved nothing: it is answered 400.
 */
export const SOURCE = 'instamed';

export interface Done {
  status: EventStatus;
  /** 200 stored (whatever it meant for the books), 400 refused. */
  http: 200 | 400;
  text: string;
}

const REVERSAL_KIND: Partial<Record<Message['trigger'], ReversalKind>> = {
  voided: 'void',
  refunded: 'refund',
  returned: 'return',
  chargeback: 'chargeback',
};

export interface SourceContext {
  claimIdentifierSystem: string | null;
}

export async function runMessage(repo: PostgresRepository, m: Message, r: Reader, source: SourceContext): Promise<Done> {
  const stored = (text: string, status: EventStatus = 'processed'): Done => ({ status, http: 200, text });
  switch (m.trigger) {
    case 'approved': {
      const result = await applyPatientPayment(repo, {
        source: SOURCE,
        billId: m.billId!,
        amount: m.amount!,
        // InstaMed is USD by contract, and its messages name no currency: refused on a tenant whose books are in another.
        currency: CURRENCY,
        ...(m.date && { paymentDate: m.date }),
        ...(r.get('transactionType') && { paymentMethod: r.get('transactionType')!.slice(0, 100) }),
        paymentTraceId: m.transactionId!,
        whenClaimUnknown: 'hold',
        ...(source.claimIdentifierSystem && { claimIdSystem: source.claimIdentifierSystem }),
        ...(instrumentOf(r) && { instrument: instrumentOf(r) }),
        identifiers: identifiersOf(m),
      });
      if (!result.ok) return refused(result);
      const o = result.value;
      if (o.status === 'unmatched') return stored(`Stored: payment ${m.transactionId} waits for its claim (bill id ${m.billId})`, 'unmatched');
      if (o.status === 'unchanged') return stored(`Stored: payment ${m.transactionId} was already recorded; nothing changed`);
      return stored(`Stored: payment ${m.transactionId} ${o.status === 'updated' ? 'updated' : 'applied'} (${o.amountSetOnClaim.toFixed(2)} to the claim, ${o.excessAmount.toFixed(2)} as credit)`);
    }
    case 'voided':
    case 'refunded':
    case 'returned':
    case 'chargeback': {
      const kind = REVERSAL_KIND[m.trigger]!;
      const original = kind === 'void' ? (m.originalTransactionId ?? m.transactionId!) : m.originalTransactionId!;
      const result = await reversePayment(repo, {
        source: SOURCE,
        kind,
        originalTraceId: original,
        currency: CURRENCY,
        ...(kind !== 'void' && { reversalTraceId: m.transactionId! }),
        ...(m.amount && kind !== 'void' && { amount: m.amount }),
        ...(m.date && { date: m.date }),
        identifiers: identifiersOf(m),
      });
      if (!result.ok) return refused(result);
      const o = result.value;
      if (o.status === 'waiting') return stored(`Stored: ${kind} of ${original} waits for the original payment`, 'unmatched');
      if (o.status === 'unchanged') return stored(`Stored: ${kind} ${m.transactionId} was already recorded; nothing changed`);
      return stored(`Stored: ${kind} of ${original} applied (${o.amount.toFixed(2)} given back)`);
    }
    case 'settlement':
    case 'settlement-error': {
      const failed = m.trigger === 'settlement-error';
      const original = m.originalTransactionId ?? m.transactionId!;
      const result = await recordSettlement(repo, { source: SOURCE, originalTraceId: original, settlementDate: m.date ?? new Date().toISOString().slice(0, 10), failed });
      // A settlement of a payment we never took (declined here, refused) moves nothing: keep it, answer 200.
      if (!result.ok && result.code === 'not-found') return stored(`Stored: settlement of unknown payment ${original}; nothing changed`, 'unmatched');
      if (!result.ok) return refused(result);
      return stored(`Stored: ${failed ? 'settlement error' : 'settlement'} of ${original} recorded`);
    }
    case 'payment-plan': {
      const plan = await savePaymentPlan(repo, r, m.paymentPlanId!, m.date, source.claimIdentifierSystem);
      return stored(`Stored: payment plan ${m.paymentPlanId} ${plan.status === 'unchanged' ? 'unchanged' : plan.status}`);
    }
    case 'declined':
    case 'error':
    case 'authorized':
    case 'cancelled':
      return stored(`Stored: ${m.trigger} transaction ${m.transactionId}; no money moved`);
  }
}

function refused(r: Refusal): Done {
  return { status: 'refused', http: 400, text: r.message };
}

/** Never a full card number: only the last four digits of whatever the sender masked ("************1111"). */
function instrumentOf(r: Reader): PaymentInstrument | undefined {
  const digits = (r.get('cardLastFour') ?? r.get('accountNumberLastFour') ?? '').replace(/\D/g, '');
  const instrument: PaymentInstrument = {
    ...(r.get('cardType') && { brand: r.get('cardType')!.slice(0, 50) }),
    ...(digits.length >= 4 && { lastFour: digits.slice(-4) }),
    ...(r.get('authorizationCode') && { authorizationCode: r.get('authorizationCode')!.slice(0, 50) }),
  };
  return Object.keys(instrument).length > 0 ? instrument : undefined;
}

/** The plan an installment belongs to, as an identifier the plan's Basic carries too. */
function identifiersOf(m: Message): PaymentIdentifier[] {
  return m.paymentPlanId ? [{ system: INSTAMED_PAYMENT_PLAN_SYSTEM, value: m.paymentPlanId }] : [];
}
