import { MAX_AMOUNT, amount } from '../../billing/index.ts';
import type { Amount } from '../../billing/index.ts';
import type { Reader } from './fields.ts';

/**
 * One InstaMed message, read through the source's field map and told what it is. Status letter
 * codes (research §1: A, C, CB, D, RI, S, SE, V; O save-on-file; X cancelled) decide, with the
 * action (a C on a Refund/Credit/Return action is a refund); when the code is absent or unknown, a
 * trigger name in the description (Approved, Voided, Refunded, ...) decides. Payment-plan messages
 * are recognised by PaymentPlanTransactionType. Nothing here touches money or the database.
 */
export type Trigger =
  | 'approved'
  | 'declined'
  | 'voided'
  | 'refunded'
  | 'returned'
  | 'chargeback'
  | 'settlement'
  | 'settlement-error'
  | 'error'
  | 'authorized'
  | 'cancelled'
  | 'payment-plan';

export interface Message {
  trigger: Trigger;
  /** What decides "the same message": transaction id (plan id for plans), status and action. */
  dedupeKey: string;
  transactionId?: string;
  originalTransactionId?: string;
  billId?: string;
  amount?: Amount;
  /** YYYY-MM-DD (UTC) from ResponseDateTime. */
  date?: string;
  paymentPlanId?: string;
}

export type Read = { ok: true; message: Message } | { ok: false; problem: string };

const BY_CODE: Record<string, Trigger> = {
  C: 'approved', V: 'voided', CB: 'chargeback', RI: 'returned', S: 'settlement', SE: 'settlement-error',
  D: 'declined', A: 'authorized', O: 'authorized', X: 'cancelled', E: 'error',
};

/** Trigger names as the sender writes them in the description, longest first so "Settlement Error" wins. */
const BY_NAME: [RegExp, Trigger][] = [
  [/^settlement ?error$/i, 'settlement-error'],
  [/^(approved|captured|approval)$/i, 'approved'],
  [/^(declined?)$/i, 'declined'],
  [/^(voided|void)$/i, 'voided'],
  [/^(refunded|refund)$/i, 'refunded'],
  [/^(returned|return|returned item)$/i, 'returned'],
  [/^(chargeback|charge ?back)$/i, 'chargeback'],
  [/^(settlement|settled)$/i, 'settlement'],
  [/^error$/i, 'error'],
  [/^(authorized|authorised|authorization|auth only|authorization only)$/i, 'authorized'],
  [/^(cancelled|canceled)$/i, 'cancelled'],
];

const REFUND_ACTIONS = /^(refund|simplerefund|credit)$/i;
const RETURN_ACTIONS = /^return$/i;

function triggerOf(r: Reader): Trigger | undefined {
  const code = r.get('statusCode')?.toUpperCase();
  const action = r.get('action') ?? '';
  let trigger = code === undefined ? undefined : BY_CODE[code];
  if (trigger === undefined) {
    const description = r.get('statusDescription')?.trim() ?? '';
    trigger = BY_NAME.find(([re]) => re.test(description))?.[1];
  }
  if (trigger === 'approved' && REFUND_ACTIONS.test(action)) return 'refunded';
  if (trigger === 'approved' && RETURN_ACTIONS.test(action)) return 'returned';
  return trigger;
}

/** MM/DD/YYYY hh:mm:ss AM/PM (UTC, the sender's format), or an ISO 8601 date(-time): its UTC date. */
export function dateOf(text: string): string | undefined {
  const us = /^(\d{1,2})\/(\d{1,2})\/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AP]M)?)?$/i.exec(text.trim());
  if (us) {
    const [, mo, d, y, h = '0', mi = '0', s = '0', half] = us;
    const hour = half ? (Number(h) % 12) + (half.toUpperCase() === 'PM' ? 12 : 0) : Number(h);
    if ((half && (Number(h) < 1 || Number(h) > 12)) || hour > 23 || Number(mi) > 59 || Number(s) > 59) return undefined;
    const date = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
    if (date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d)) return undefined;
    return date.toISOString().slice(0, 10);
  }
  const iso = /^(\d{4})-(\d{2})-(\d{2})(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$/.exec(text.trim());
  if (!iso) return undefined;
  const when = new Date(text.length === 10 ? `${text}T00:00:00Z` : text);
  return Number.isNaN(when.getTime()) ? undefined : when.toISOString().slice(0, 10);
}

const AMOUNT = /^\d{1,13}(\.\d{1,2})?$/;

function amountOf(r: Reader): { amount?: Amount; problem?: string } {
  const partial = /^true$/i.test(r.get('isPartiallyApproved') ?? '') ? r.get('partialApprovalAmount') : undefined;
  const field = partial !== undefined ? 'partialApprovalAmount' : 'amount';
  const text = partial ?? r.get('amount');
  if (text === undefined) return {};
  // Always a positive decimal string (research §1); the sign comes from the status and action.
  if (!AMOUNT.test(text)) return { problem: `${r.nameOf(field)} must be a positive amount like 50.00 (got ${JSON.stringify(text.slice(0, 40))})` };
  const value = amount(text);
  if (!value.gt(0)) return { problem: `${r.nameOf(field)} must be positive` };
  if (value.gt(MAX_AMOUNT)) return { problem: `${r.nameOf(field)} must be at most ${MAX_AMOUNT.toFixed(2)}` };
  return { amount: value };
}

const ID = /^[\x21-\x7e]{1,255}$/;

export function readMessage(r: Reader): Read {
  const planType = r.get('paymentPlanTransactionType');
  const planId = r.get('paymentPlanId');
  if (planId !== undefined && !ID.test(planId)) return { ok: false, problem: `${r.nameOf('paymentPlanId')} is not a valid id` };
  const responseDate = r.get('responseDateTime');
  const date = responseDate === undefined ? undefined : dateOf(responseDate);
  if (responseDate !== undefined && date === undefined) {
    return { ok: false, problem: `${r.nameOf('responseDateTime')} must be MM/DD/YYYY hh:mm:ss AM/PM (got ${JSON.stringify(responseDate.slice(0, 40))})` };
  }
  if (planType !== undefined) {
    if (planId === undefined) return { ok: false, problem: `${r.nameOf('paymentPlanId')} is required on a payment plan message` };
    return { ok: true, message: { trigger: 'payment-plan', dedupeKey: `plan|${planId}`, paymentPlanId: planId, ...(date && { date }), ...optionalIds(r) } };
  }

  const transactionId = r.get('transactionId');
  if (transactionId === undefined) return { ok: false, problem: `${r.nameOf('transactionId')} is required` };
  if (!ID.test(transactionId)) return { ok: false, problem: `${r.nameOf('transactionId')} is not a valid transaction id` };
  const trigger = triggerOf(r);
  if (!trigger) {
    const code = r.get('statusCode');
    return {
      ok: false,
      problem: code === undefined
        ? `${r.nameOf('statusCode')} (or a trigger name in ${r.nameOf('statusDescription')}) is required`
        : `Unknown transaction status ${r.nameOf('statusCode')}=${code.slice(0, 10)}`,
    };
  }
  const money = amountOf(r);
  if (money.problem) return { ok: false, problem: money.problem };
  const originalTransactionId = r.get('originalTransactionId');
  if (originalTransactionId !== undefined && !ID.test(originalTransactionId)) return { ok: false, problem: `${r.nameOf('originalTransactionId')} is not a valid transaction id` };
  const status = r.get('statusCode')?.toUpperCase() ?? trigger;
  const message: Message = {
    trigger,
    dedupeKey: `txn|${transactionId}|${status}|${(r.get('action') ?? '').toLowerCase()}`,
    transactionId,
    ...(originalTransactionId !== undefined && { originalTransactionId }),
    ...(money.amount && { amount: money.amount }),
    ...(date && { date }),
    ...optionalIds(r),
  };
  return checkNeeds(r, message);
}

function optionalIds(r: Reader): Pick<Message, 'billId' | 'paymentPlanId'> {
  const billId = r.billId();
  const planId = r.get('paymentPlanId');
  return { ...(billId !== undefined && { billId: billId.slice(0, 255) }), ...(planId !== undefined && { paymentPlanId: planId }) };
}

/** What each trigger cannot do without. */
function checkNeeds(r: Reader, m: Message): Read {
  const problem = (text: string): Read => ({ ok: false, problem: text });
  switch (m.trigger) {
    case 'approved':
      if (!m.amount) return problem(`${r.nameOf('amount')} is required on an approved payment`);
      if (!m.billId) return problem(`The bill id (${r.billIdField}) is required on an approved payment`);
      break;
    case 'refunded':
    case 'returned':
    case 'chargeback':
      if (!m.originalTransactionId || m.originalTransactionId === m.transactionId) {
        return problem(`${r.nameOf('originalTransactionId')} must name the original payment of a ${m.trigger === 'chargeback' ? 'chargeback' : m.trigger.replace(/ed$/, '')}`);
      }
      break;
    default:
      break;
  }
  return { ok: true, message: m };
}
