/**
 * FHIR date, dateTime and instant values as the range of instants they cover: '2024' is the whole
 * year, '2024-05-01' the whole day (UTC when no zone is given), an instant its own millisecond.
 * Search compares ranges, as https://hl7.org/fhir/R4/search.html#date says.
 */
export interface InstantRange {
  low: Date;
  high: Date;
}

const DATE_PATTERN =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** Returns undefined when `text` is not a FHIR date/dateTime/instant. */
export function fhirDateRange(text: string): InstantRange | undefined {
  const m = DATE_PATTERN.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  const offsetMinutes = zoneOffsetMinutes(zone);
  if (mo === undefined) return utcRange(Date.UTC(year, 0, 1), Date.UTC(year + 1, 0, 1));
  const month = Number(mo) - 1;
  if (month > 11) return undefined;
  if (d === undefined) return utcRange(Date.UTC(year, month, 1), Date.UTC(year, month + 1, 1));
  const day = Number(d);
  if (day < 1 || day > 31) return undefined;
  if (h === undefined) return utcRange(Date.UTC(year, month, day), Date.UTC(year, month, day + 1));
  const base = Date.UTC(year, month, day, Number(h), Number(mi), Number(s ?? 0)) - offsetMinutes * 60_000;
  if (s === undefined) return utcRange(base, base + 60_000);
  if (frac === undefined) return utcRange(base, base + 1000);
  const millis = Number(frac.slice(0, 3).padEnd(3, '0'));
  return utcRange(base + millis, base + millis + 1);
}

function zoneOffsetMinutes(zone: string | undefined): number {
  if (!zone || zone === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  return sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
}

/** [start, end) as the inclusive range [start, end - 1 ms]. */
function utcRange(startMs: number, endMs: number): InstantRange | undefined {
  if (Number.isNaN(startMs) || Number.isNaN(endMs)) return undefined;
  return { low: new Date(startMs), high: new Date(endMs - 1) };
}
