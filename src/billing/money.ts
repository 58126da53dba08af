import { Decimal } from 'decimal.js';
import type { Money } from '@medplum/fhirtypes';
import { STORED_DIGITS, minorDigits } from '../iso4217.ts';

// ISO 4217 (digits, which codes may be a book currency) is a leaf module, for auth's tenant input too.
export { STORED_DIGITS, bookCurrencyProblem, currencyDigits, minorDigits } from '../iso4217.ts';

/**
 * Money is decimal.js, always: never JS float arithmetic or comparison on an amount.
 *
 * A tenant keeps its books in one currency (tenant.currency, ISO 4217; USD unless set). Rounding
 * rule: an amount is rounded once, where it enters (a webhook body, a ClaimResponse's Money, an
 * $allocate amount), to that currency's minor unit (USD and AUD: 2 decimal places, JPY: 0) with
 * ROUND_HALF_EVEN (banker's rounding, the IEEE 754 and accounting default: no upward bias over
 * many roundings). Everything after that is exact addition and subtraction, so it never needs
 * rounding again. An amount in another currency is refused, never converted.
 */
export const Money2 = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_EVEN });
export type Amount = InstanceType<typeof Money2>;

/** The default book currency, and the currency of the senders that are USD by contract (Cair, InstaMed, X12 835). */
export const CURRENCY = 'USD';
/** Minor-unit digits of USD. */
export const MINOR_DIGITS = 2;
/**
 * Largest amount we take: below 10^13 an amount has at most 15 significant digits, so the IEEE
 * double that FHIR's JSON number becomes prints back as exactly the same decimal (see toJsonNumber).
 */
export const MAX_AMOUNT = new Money2('9999999999999.99');

/** MAX_AMOUNT in `currency`'s minor unit (JPY: 9999999999999). */
export function maxAmount(currency: string): Amount {
  return MAX_AMOUNT.toDecimalPlaces(minorDigits(currency), Money2.ROUND_DOWN);
}

export const ZERO: Amount = new Money2(0);

/**
 * An amount as it enters: a JSON number (its shortest round-trip decimal form, which is the literal
 * that was sent for up to 15 significant digits), a decimal string, or a Decimal; rounded half-even
 * to the minor unit of `currency` (the tenant's book currency).
 */
export function amount(value: number | string | Amount, currency = CURRENCY): Amount {
  const d = typeof value === 'number' ? new Money2(String(value)) : new Money2(value);
  if (!d.isFinite()) throw new RangeError(`Not a finite amount: ${String(value)}`);
  return d.toDecimalPlaces(minorDigits(currency), Money2.ROUND_HALF_EVEN);
}

/** An amount for a message: `80.00 AUD`, `1200 JPY`. */
export function formatMoney(value: Amount, currency: string): string {
  return `${value.toFixed(minorDigits(currency))} ${currency}`;
}

/** An amount's text in `currency`'s minor unit, without the code (`80.00`; JPY `1200`). */
export function fixed(value: Amount, currency: string): string {
  return value.toFixed(minorDigits(currency));
}

/**
 * The JSON number for a stored FHIR Money.value or an API response. FHIR JSON needs a number, not a
 * string. Exact: the amount has at most 2 decimal places and at most 15 significant digits
 * (MAX_AMOUNT), so the double nearest to it serialises (shortest round-trip form, as JSON.stringify
 * does) back to exactly this decimal: Number("0.30") prints as 0.3, never 0.30000000000000004.
 */
export function toJsonNumber(value: Amount): number {
  const text = value.toFixed();
  const n = Number(text);
  if (!new Money2(String(n)).eq(value)) throw new RangeError(`Amount ${text} is not exact as a JSON number`);
  return n;
}

export function fhirMoney(value: Amount, currency: string): Money {
  return { value: toJsonNumber(value), currency: currency as Money['currency'] };
}

/**
 * For SQL parameters (`$1::numeric`): the exact decimal text. Amounts were rounded at entry to their
 * currency's minor unit, which the columns' scale holds; more digits would be rounded by the column
 * silently, so they are a bug here.
 */
export function sql(value: Amount): string {
  if (value.decimalPlaces() > STORED_DIGITS) throw new RangeError(`Amount ${value.toFixed()} has more than ${STORED_DIGITS} decimal places`);
  return value.toFixed(STORED_DIGITS);
}
export function min(a: Amount, b: Amount): Amount {
  return a.lte(b) ? a : b;
}

export function max(a: Amount, b: Amount): Amount {
  return a.gte(b) ? a : b;
}

export function sum(values: Iterable<Amount>): Amount {
  let total = ZERO;
  for (const v of values) total = total.plus(v);
  return total;
}
