import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';
import type { Resource } from '@medplum/fhirtypes';

/**
 * The differential test's oracle: HL7's `fhirpath` engine evaluates the R4 SearchParameter
 * expression on a resource, and R4's matching rules (https://hl7.org/fhir/R4/search.html), written
 * here from the spec and sharing no code with src/fhir/search, decide whether a search value
 * matches. Dates without a zone are read as UTC, the server's declared zone.
 */

export interface OracleParameter {
  type: string;
  expression: string;
  /** The code system a `code` of this parameter belongs to (its required binding). */
  implicitSystem?: string;
}

type Obj = Record<string, any>;

/** fhirpath.js evaluates resolve() asynchronously (it fetches); the type is read off the reference instead. */
function withoutResolve(expression: string): string {
  return expression.replace(/\.where\(resolve\(\) is ([A-Za-z]+)\)/g, (_m, type) => `.where(reference.matches('(^|/)${type}/[A-Za-z0-9\\\\-.]+$'))`);
}

export function values(resource: Resource, param: OracleParameter): unknown[] {
  return fhirpath.evaluate(resource, withoutResolve(param.expression), undefined, r4) as unknown[];
}

export function matches(resource: Resource, param: OracleParameter, modifier: string | undefined, value: string, base: string): boolean {
  const found = values(resource, param);
  const ors = value.split(',');
  const any = (test: (v: unknown, q: string) => boolean): boolean => ors.some((q) => found.some((v) => test(v, q)));
  switch (param.type) {
    case 'token':
      if (modifier === 'not') return !any((v, q) => tokenMatch(v, q, param.implicitSystem));
      return any((v, q) => tokenMatch(v, q, param.implicitSystem));
    case 'string':
      return any((v, q) => stringParts(v).some((s) => stringMatch(s, q, modifier)));
    case 'date':
      return ors.some((q) => found.some((v) => dateMatch(v, q)));
    case 'quantity':
    case 'number':
      return any((v, q) => quantityMatch(v, q));
    case 'reference':
      return any((v, q) => referenceMatch(v, q, base));
    default:
      throw new Error(`oracle: no rule for ${param.type}`);
  }
}

function tokenMatch(v: unknown, q: string, implicitSystem: string | undefined): boolean {
  const codings: { system?: string; code?: string }[] =
    typeof v === 'string'
      ? [{ system: implicitSystem, code: v }]
      : (v as Obj).coding
        ? (v as Obj).coding
        : 'value' in (v as Obj)
          ? [{ system: (v as Obj).system, code: (v as Obj).value }]
          : [v as Obj];
  const bar = q.indexOf('|');
  return codings.some((c) => {
    if (bar < 0) return c.code === q;
    const [system, code] = [q.slice(0, bar), q.slice(bar + 1)];
    if (system === '') return c.system === undefined && c.code === code;
    if (code === '') return c.system === system;
    return c.system === system && c.code === code;
  });
}

function stringParts(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  const o = v as Obj;
  return [o.text, o.family, ...(o.given ?? []), ...(o.prefix ?? []), ...(o.suffix ?? []), ...(o.line ?? []), o.city, o.state, o.postalCode, o.country].filter(
    (s): s is string => typeof s === 'string',
  );
}

/** R4: "case and accent insensitive" by default; :exact exact; :contains anywhere. */
function fold(s: string): string {
  return s.normalize('NFKD').replace(/\p{M}/gu, '').toLocaleLowerCase('en');
}

function stringMatch(s: string, q: string, modifier: string | undefined): boolean {
  if (modifier === 'exact') return s === q;
  if (modifier === 'contains') return fold(s).includes(fold(q));
  return fold(s).startsWith(fold(q));
}

/** [start, end) in ms of a FHIR date, dateTime or instant, by its precision. */
export function dateRange(text: string): [number, number] {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.exec(text);
  if (!m) throw new Error(`oracle: not a FHIR date: ${text}`);
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  let offset = 0;
  if (zone && zone !== 'Z') offset = (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
  if (!mo) return [Date.UTC(+y, 0, 1), Date.UTC(+y + 1, 0, 1)];
  if (!d) return [Date.UTC(+y, +mo - 1, 1), Date.UTC(+y, +mo, 1)];
  if (!h) return [Date.UTC(+y, +mo - 1, +d), Date.UTC(+y, +mo - 1, +d + 1)];
  const start = Date.UTC(+y, +mo - 1, +d, +h, +mi, +(s ?? 0)) - offset;
  if (!s) return [start, start + 60_000];
  if (!frac) return [start, start + 1000];
  const ms = Math.floor(Number(frac) * 1000);
  return [start + ms, start + ms + 1];
}

function targetRange(v: unknown): [number, number] | undefined {
  if (typeof v === 'string') return dateRange(v);
  const p = v as Obj;
  if (!p.start && !p.end) return undefined;
  return [p.start ? dateRange(p.start)[0] : -Infinity, p.end ? dateRange(p.end)[1] : Infinity];
}

const PREFIX = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)/;

/** R4 search, date: the prefixes as relations of the target's range [lo, hi) and the searched one [qlo, qhi). */
function dateMatch(v: unknown, query: string): boolean {
  const prefix = PREFIX.exec(query)?.[1] ?? 'eq';
  const [qlo, qhi] = dateRange(query.replace(PREFIX, ''));
  const range = targetRange(v);
  if (!range) return false;
  const [lo, hi] = range;
  const contained = lo >= qlo && hi <= qhi;
  switch (prefix) {
    case 'eq':
      return contained;
    case 'ne':
      return !contained;
    case 'gt':
      return hi > qhi;
    case 'lt':
      return lo < qlo;
    case 'ge':
      return hi > qhi || contained;
    case 'le':
      return lo < qlo || contained;
    case 'sa':
      return lo >= qhi;
    case 'eb':
      return hi <= qlo;
    case 'ap':
      return lo < qhi && hi > qlo;
  }
  return false;
}

/** R4 search, number and quantity: `45` is [44.5, 45.5); `n|system|code` compares system and code, `n||x` code or unit. */
function quantityMatch(v: unknown, query: string): boolean {
  const prefix = PREFIX.exec(query)?.[1] ?? 'eq';
  const [number, system, unit] = query.replace(PREFIX, '').split('|');
  const o = (typeof v === 'number' ? { value: v } : v) as Obj;
  if (typeof o.value !== 'number') return false;
  if (system && o.system !== system) return false;
  if (system && unit && o.code !== unit) return false;
  if (!system && unit && o.code !== unit && o.unit !== unit) return false;
  // Exact decimal arithmetic on scaled integers: the half-unit of the searched value's last digit.
  const [mantissa, exponent = '0'] = number.toLowerCase().split('e');
  const decimals = mantissa.split('.')[1]?.length ?? 0;
  const scale = Math.max(decimals - Number(exponent), 0) + 6;
  const toScaled = (n: string): bigint => {
    const [m, e = '0'] = n.toLowerCase().split('e');
    const [int, frac = ''] = m.split('.');
    const digits = BigInt((int + frac).replace('-', '')) * (m.startsWith('-') ? -1n : 1n);
    const shift = scale - frac.length + Number(e);
    return shift >= 0 ? digits * 10n ** BigInt(shift) : digits / 10n ** BigInt(-shift);
  };
  const q = toScaled(number);
  const half = 5n * 10n ** BigInt(scale - decimals + Number(exponent) - 1);
  const x = toScaled(String(o.value));
  switch (prefix) {
    case 'eq':
      return x >= q - half && x < q + half;
    case 'ne':
      return !(x >= q - half && x < q + half);
    case 'gt':
    case 'sa':
      return x > q;
    case 'lt':
    case 'eb':
      return x < q;
    case 'ge':
      return x >= q;
    case 'le':
      return x <= q;
    case 'ap': {
      const margin = (q < 0n ? -q : q) / 10n;
      return x >= q - margin && x <= q + margin;
    }
  }
  return false;
}

/** R4 references: `Type/id`, `id` (any type), or an absolute URL; this server's absolute URLs are its local resources. */
function referenceMatch(v: unknown, query: string, base: string): boolean {
  const ref = (v as Obj).reference as string | undefined;
  if (!ref) return false;
  const local = (r: string): string => (r.startsWith(`${base}/`) ? r.slice(base.length + 1) : r);
  const target = local(ref);
  const q = local(query);
  if (!q.includes('/')) return /^[A-Z][A-Za-z]+\/[^/]+$/.test(target) && target.split('/')[1] === q;
  return target === q;
}
