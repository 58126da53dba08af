/**
 * Card numbers never reach the journal: any run of 13 to 19 digits that passes the Luhn check (a
 * payment card number, PCI DSS's "PAN") is masked down to its last four, wherever it appears.
 */
export function redactCardNumbers(text: string): string {
  return text.replace(/(?<!\d)\d{13,19}(?!\d)/g, (digits) => (luhn(digits) ? `${'*'.repeat(digits.length - 4)}${digits.slice(-4)}` : digits));
}

function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}
