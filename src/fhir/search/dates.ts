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

/**
 * Returns undefined when `text` is not a FHIR date/dateTime/instant, including what a lenient
 * parser would roll over (30 February, hour 25) and year 0, which FHIR does not have.
 */
export function fhirDateRange(text: string): InstantRange | undefined {
  const m = DATE_PATTERN.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  if (year < 1) return undefined;
  const offsetMinutes = zoneOffsetMinutes(zone);
  if (offsetMinutes === undefined) return undefined;
  if (mo === undefined) return utcRange(utc(year, 0, 1), utc(year + 1, 0, 1));
  const month = Number(mo) - 1;
  if (month < 0 || month > 11) return undefined;
  if (d === undefined) return utcRange(utc(year, month, 1), utc(year, month + 1, 1));
  const day = Number(d);
  if (day < 1 || day > daysInMonth(year, month)) return undefined;
  if (h === undefined) return utcRange(utc(year, month, day), utc(year, month, day + 1));
  // Seconds 60 is FHIR's leap second; it rolls into the next minute.
  if (Number(h) > 23 || Number(mi) > 59 || Number(s ?? 0) > 60) return undefined;
  const base = utc(year, month, day, Number(h), Number(mi), Number(s ?? 0)) - offsetMinutes * 60_000;
  if (s === undefined) return utcRange(base, base + 60_000);
  if (frac === undefined) return utcRange(base, base + 1000);
  const millis = Number(frac.slice(0, 3).padEnd(3, '0'));
  return utcRange(base + millis, base + millis + 1);
}

/** Date.UTC, but years 1-99 as themselves (Date.UTC reads them as 1901-1999). */
function utc(year: number, month: number, day: number, h = 0, mi = 0, s = 0): number {
  const date = new Date(Date.UTC(2000, month, day, h, mi, s));
  date.setUTCFullYear(year + date.getUTCFullYear() - 2000);
  return date.getTime();
}

function daysInMonth(year: number, month: number): number {
  return new Date(utc(year, month + 1, 1) - 86_400_000).getUTCDate();
}

/** Minutes east of UTC; undefined past FHIR's ±14:00. */
function zoneOffsetMinutes(zone: string | undefined): number | undefined {
  if (!zone || zone === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const minutes = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6));
  return minutes > 14 * 60 || Number(zone.slice(4, 6)) > 59 ? undefined : sign * minutes;
}

/** [start, end) as the inclusive range [start, end - 1 ms]. */
function utcRange(startMs: number, endMs: number): InstantRange | undefined {
  if (Number.isNaN(startMs) || Number.isNaN(endMs)) return undefined;
  return { low: new Date(startMs), high: new Date(endMs - 1) };
}
