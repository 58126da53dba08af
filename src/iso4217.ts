/**
 * ISO 4217 facts for book currencies: a code's minor digits, and which codes may be a tenant's book
 * currency. A leaf (it imports nothing of ours), so that auth's tenant input and billing's money
 * both use it without one layer importing the other.
 */

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
const digitsCache = new Map<string, number>([['USD', 2]]);

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
