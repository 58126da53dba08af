/**
 * Outcomes of billing commands. A refusal (unknown claim, insufficient balance, a trace id reused
 * for another bill) is a value, decided before anything is written; each sender or API maps it to
 * its own shape and status. A failure (a resource that does not validate, a database error) is
 * thrown, which rolls the whole transaction back.
 */
export type RefusalCode =
  /** The claim (or credit) does not exist in this tenant. */
  | 'not-found'
  /** The request cannot be carried out as asked (e.g. more than the balance or open responsibility). */
  | 'invalid'
  /** The request contradicts what is already recorded (e.g. a trace id used for another bill). */
  | 'conflict';

export interface Refusal {
  ok: false;
  code: RefusalCode;
  message: string;
  /** The input field at fault, when there is one (e.g. `paymentTraceId`, `amount`). */
  field?: string;
}

export type BillingResult<T> = { ok: true; value: T } | Refusal;

export function refuse(code: RefusalCode, message: string, field?: string): Refusal {
  return { ok: false, code, message, ...(field !== undefined && { field }) };
}

/**
 * A payment or allocation that cannot be processed because of the data it meets (a claim without a
 * patient, a ClaimResponse in another currency, a lifecycle changed underneath). Thrown, so the
 * transaction rolls back; its message is safe to show to the caller.
 */
export class BillingFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BillingFailure';
  }
}
