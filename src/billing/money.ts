import { Decimal } from 'decimal.js';
import type { Money } from '@medplum/fhirtypes';

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
 * The scale of every money column (numeric(18,2)). A currency with more minor digits (BHD, KWD,
 * TND: 3) is refused as a book currency rather than rounded into these columns.
 */
export const STORED_DIGITS = 2;

/**
 * ISO 4217 exponents where the runtime's ICU (CLDR, which gives the digits in everyday use) says
 * otherwise: CLDR drops minor units nobody uses in cash (COP, HUF, IDR, PKR: 0), ISO keeps them.
 * Checked against Node 24's ICU: every other code it lists agrees with ISO 4217.
 */
const ISO_DIGITS: Record<string, number> = {
  AFN: 2, ALL: 2, COP: 2, HUF: 2, IDR: 2, IQD: 3, IRR: 2, KPW: 2, LAK: 2, LBP: 2, MGA: 2, MMK: 2, PKR: 2, SLL: 2, SOS: 2, SYP: 2, YER: 2,
};
/** Codes ISO 4217 lists with no minor unit ("N.A."): precious metals, funds, testing. Not money we book. */
const NOT_MONEY = new Set(['XAG', 'XAU', 'XBA', 'XBB', 'XBC', 'XBD', 'XDR', 'XPD', 'XPT', 'XSU', 'XTS', 'XUA', 'XXX']);
let known: Set<string> | undefined;
const digitsCache = new Map<string, number>([[CURRENCY, MINOR_DIGITS]]);

/** The ISO 4217 exponent of `code` (upper case), or undefined for a code that is not a currency. */
export function currencyDigits(code: string): number | undefined {
  const cached = digitsCache.get(code);
  if (cached !== undefined) return cached;
  known ??= new Set(Intl.supportedValuesOf('currency'));
  if (!known.has(code) || NOT_MONEY.has(code)) return undefined;
  const digits = ISO_DIGITS[code] ?? new Intl.NumberFormat('en', { style: 'currency', currency: code }).resolvedOptions().maximumFractionDigits!;
  digitsCache.set(code, digits);
  return digits;
}

/** Why `code` cannot be a tenant's book currency, or undefined when it can. */
export function bookCurrencyProblem(code: string): string | undefined {
  const digits = /^[A-Z]{3}$/.test(code) ? currencyDigits(code) : undefined;
  if (digits === undefined) return `currency ${code} is not an ISO 4217 currency code (such as USD, AUD, JPY)`;
  if (digits > STORED_DIGITS) return `currency ${code} has ${digits} minor digits; books are kept to at most ${STORED_DIGITS} (numeric(18,2) money columns)`;
  return undefined;
}

/** Minor digits of a book currency (one that passed bookCurrencyProblem). */
export function minorDigits(currency: string): number {
  const digits = currencyDigits(currency);
  if (digits === undefined || digits > STORED_DIGITS) throw new RangeError(`Not a book currency: ${currency}`);
  return digits;
}

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
