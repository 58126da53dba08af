import { MAX_AMOUNT, ZERO, amount } from '../../billing/index.ts';
import type { Amount } from '../../billing/index.ts';
import type { Adjustment, ClaimPayment, ProviderAdjustment, ServiceLine } from './model.ts';
import { X12Error } from './segments.ts';
import type { Segment } from './segments.ts';

// Reading one segment's elements (parse.ts): amounts as decimals, dates, the CLP, SVC, CAS, MOA and
// PLB segments; anything malformed is an X12Error naming the segment and its position.

export function required(s: Segment, element: string, what: string): string {
  const v = String(s[element] ?? '').trim();
  if (v === '') throw new X12Error(`${what} is required`, s);
  return v;
}

export function money(s: Segment, element: string, what: string): Amount {
  const v = String(s[element] ?? '').trim();
  if (!/^-?(\d+(\.\d*)?|\.\d+)$/.test(v)) throw new X12Error(`${what} must be a decimal amount, not ${JSON.stringify(v)}`, s);
  const a = amount(v);
  if (a.abs().gt(MAX_AMOUNT)) throw new X12Error(`${what} is out of range`, s);
  return a;
}

export function optionalMoney(s: Segment, element: string, what: string): Amount {
  return String(s[element] ?? '').trim() === '' ? ZERO : money(s, element, what);
}

export function date(s: Segment, element: string, what: string): string {
  const v = String(s[element] ?? '').trim();
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(v);
  const iso = m ? `${m[1]}-${m[2]}-${m[3]}` : '';
  if (!m || Number.isNaN(Date.parse(iso)) || new Date(iso).toISOString().slice(0, 10) !== iso) throw new X12Error(`${what} must be a date CCYYMMDD, not ${JSON.stringify(v)}`, s);
  return iso;
}

export function newClaim(s: Segment): ClaimPayment {
  const opt = (e: string): string | undefined => (String(s[e] ?? '').trim() || undefined);
  return {
    position: s.position,
    patientControlNumber: required(s, '1', 'CLP01 (patient control number)'),
    status: required(s, '2', 'CLP02 (claim status)'),
    charge: money(s, '3', 'CLP03 (total charge)'),
    paid: money(s, '4', 'CLP04 (payment amount)'),
    patientResponsibility: optionalMoney(s, '5', 'CLP05 (patient responsibility)'),
    ...(opt('6') && { filingIndicator: opt('6') }),
    ...(opt('7') && { payerClaimControlNumber: opt('7') }),
    ...(opt('9') && { frequency: opt('9') }),
    adjustments: [],
    remarks: [],
    services: [],
  };
}

export function newService(s: Segment): ServiceLine {
  // x12-parser names an element's first component by the element ('1') and the next ones '1-1', '1-2', ...
  const modifiers = ['1-2', '1-3', '1-4', '1-5'].map((k) => String(s[k] ?? '').trim()).filter(Boolean);
  return {
    position: s.position,
    procedure: { qualifier: String(s['1'] ?? ''), code: String(s['1-1'] ?? ''), modifiers },
    charge: money(s, '2', 'SVC02 (line charge)'),
    paid: money(s, '3', 'SVC03 (line payment)'),
    ...(String(s['5'] ?? '').trim() && { units: String(s['5']).trim() }),
    adjustments: [],
    remarks: [],
  };
}

/** CAS01 group, then up to six reason / amount / quantity triplets. */
export function adjustments(s: Segment): Adjustment[] {
  const group = required(s, '1', 'CAS01 (adjustment group code)');
  const out: Adjustment[] = [];
  for (let i = 2; i <= 17; i += 3) {
    const reason = String(s[String(i)] ?? '').trim();
    if (!reason) continue;
    const quantity = String(s[String(i + 2)] ?? '').trim();
    out.push({ group, reason, amount: money(s, String(i + 1), `CAS${String(i + 1).padStart(2, '0')} (adjustment amount)`), ...(quantity && { quantity }) });
  }
  if (out.length === 0) throw new X12Error('CAS02 (adjustment reason code) is required', s);
  return out;
}

/** MOA03-07 / MIA05, 20-24: remark codes. */
export function remarkCodes(s: Segment): string[] {
  const at = s.name === 'MOA' ? ['3', '4', '5', '6', '7'] : ['5', '20', '21', '22', '23'];
  return at.map((e) => String(s[e] ?? '').trim()).filter(Boolean);
}

/** PLB01 provider, PLB02 date, then up to six reason:reference / amount pairs. */
export function providerAdjustments(s: Segment): ProviderAdjustment[] {
  const providerId = required(s, '1', 'PLB01 (provider identifier)');
  const when = String(s['2'] ?? '').trim() ? date(s, '2', 'PLB02 (fiscal period date)') : undefined;
  const out: ProviderAdjustment[] = [];
  for (let i = 3; i <= 13; i += 2) {
    const reason = String(s[String(i)] ?? '').trim();
    if (!reason) continue;
    const reference = String(s[`${i}-1`] ?? '').trim();
    out.push({ position: s.position, providerId, ...(when && { date: when }), reason, ...(reference && { reference }), amount: money(s, String(i + 1), `PLB${String(i + 1).padStart(2, '0')} (adjustment amount)`) });
  }
  if (out.length === 0) throw new X12Error('PLB03 (adjustment reason) is required', s);
  return out;
}
