import { Decimal } from 'decimal.js';
import type { Money } from '@medplum/fhirtypes';

/**
 * Money is decimal.js, always: never JS float arithmetic or comparison on an amount.
 *
 * Rounding rule: an amount is rounded once, where it enters (a webhook body, a ClaimResponse's
 * Money, an $allocate amount), to the currency's minor unit (USD: 2 decimal places) with
 * ROUND_HALF_EVEN (banker's rounding, the IEEE 754 and accounting default: no upward bias over
 * many roundings). Everything after that is exact addition and subtraction of 2-dp decimals,
 * so it never needs rounding again.
 */
export const Money2 = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_EVEN });
export type Amount = InstanceType<typeof Money2>;

export const CURRENCY = 'USD';
/** Minor-unit digits of the currencies we take (USD). */
export const MINOR_DIGITS = 2;
/**
 * Largest amount we take: below 10^13 an amount has at most 15 significant digits, so the IEEE
 * double that FHIR's JSON number becomes prints back as exactly the same decimal (see toJsonNumber).
 */
export const MAX_AMOUNT = new Money2('9999999999999.99');

export const ZERO: Amount = new Money2(0);

/**
 * An amount as it enters: a JSON number (its shortest round-trip decimal form, which is the literal
 * that was sent for up to 15 significant digits), a decimal string, or a Decimal; rounded half-even
 * to the minor unit.
 */
export function amount(value: number | string | Amount): Amount {
  const d = typeof value === 'number' ? new Money2(String(value)) : new Money2(value);
  if (!d.isFinite()) throw new RangeError(`Not a finite amount: ${String(value)}`);
  return d.toDecimalPlaces(MINOR_DIGITS, Money2.ROUND_HALF_EVEN);
}

/**
 * The JSON number for a stored FHIR Money.value or an API response. FHIR JSON needs a number, not a
 * string. Exact: the amount has 2 decimal places and at most 15 significant digits (MAX_AMOUNT), so
 * the double nearest to it serialises (shortest round-trip form, as JSON.stringify does) back to
 * exactly this decimal: Number("0.30") prints as 0.3, never 0.30000000000000004.
 */
export function toJsonNumber(value: Amount): number {
  const text = value.toFixed(MINOR_DIGITS);
  const n = Number(text);
  if (!new Money2(String(n)).eq(value)) throw new RangeError(`Amount ${text} is not exact as a JSON number`);
  return n;
}

export function fhirMoney(value: Amount, currency = CURRENCY): Money {
  return { value: toJsonNumber(value), currency: currency as Money['currency'] };
}

/** For SQL parameters (`$1::numeric`): the exact decimal text. */
export function sql(value: Amount): string {
  return value.toFixed(MINOR_DIGITS);
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
