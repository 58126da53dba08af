import { XMLParser, XMLValidator } from 'fast-xml-parser';

/**
 * Webhook bodies by Content-Type, for senders whose messages are flat field lists (InstaMed):
 * JSON objects, XML documents (the root element's children) and NVP
 * (application/x-www-form-urlencoded). Every value is kept as the text sent ("50.00", "false"):
 * what a field means is the sender's mapping's business. Keys are lower-cased so fields match
 * case-insensitively; a key given twice (in any case) with different values is refused, not guessed.
 * XML with a DOCTYPE or entity declarations is refused before parsing (no entity expansion, no
 * external entities); the size limit is the route's (express.raw, then 413).
 */
export type BodyFormat = 'json' | 'xml' | 'nvp';

export type ParsedFields =
  | { ok: true; format: BodyFormat; fields: Map<string, string>; object: Record<string, string> }
  | { ok: false; status: 400 | 415; message: string };

const xml = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: true, ignoreDeclaration: true, ignorePiTags: true });

export function formatOf(contentType: string | undefined, text: string): BodyFormat | undefined {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json' || type.endsWith('+json')) return 'json';
  if (type === 'application/xml' || type === 'text/xml' || type.endsWith('+xml')) return 'xml';
  if (type === 'application/x-www-form-urlencoded') return 'nvp';
  if (type !== '') return undefined;
  // No Content-Type at all: tell the three apart by their first character.
  const first = text.trimStart()[0];
  return first === '{' ? 'json' : first === '<' ? 'xml' : 'nvp';
}

export function decodeUtf8(body: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return undefined;
  }
}

export function parseFields(contentType: string | undefined, text: string): ParsedFields {
  const format = formatOf(contentType, text);
  if (!format) return { ok: false, status: 415, message: `Unsupported Content-Type ${contentType}: send application/json, application/xml, text/xml or application/x-www-form-urlencoded` };
  if (text.trim() === '') return { ok: false, status: 400, message: 'The body is empty' };
  const entries = format === 'json' ? fromJson(text) : format === 'xml' ? fromXml(text) : fromNvp(text);
  if (typeof entries === 'string') return { ok: false, status: 400, message: entries };
  const fields = new Map<string, string>();
  const object: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (value === undefined) continue;
    const lower = key.toLowerCase();
    const before = fields.get(lower);
    if (before !== undefined && before !== value) return { ok: false, status: 400, message: `Field ${key} is given more than once with different values` };
    object[key] = value;
    if (value !== '') fields.set(lower, value);
  }
  return { ok: true, format, fields, object };
}

type Entries = [string, string | undefined][] | string;

/** A JSON scalar as text; null is absent; objects and arrays are not fields of a flat message. */
function scalar(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim();
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function fromJson(text: string): Entries {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `Malformed JSON: ${(err as Error).message}`;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'The JSON body must be an object';
  return Object.entries(value).map(([k, v]) => [k, scalar(v)]);
}

function fromXml(text: string): Entries {
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) return 'XML with a DOCTYPE or entity declarations is not accepted';
  const valid = XMLValidator.validate(text);
  if (valid !== true) return `Malformed XML: ${valid.err.msg} (line ${valid.err.line})`;
  const doc = xml.parse(text) as Record<string, unknown>;
  const roots = Object.keys(doc);
  if (roots.length !== 1) return 'The XML document must have one root element';
  const root = doc[roots[0]];
  if (root === '' || root === undefined) return 'The XML root element is empty';
  if (typeof root !== 'object' || root === null) return 'The XML root element must hold one element per field';
  const entries: [string, string | undefined][] = [];
  for (const [k, v] of Object.entries(root)) {
    if (Array.isArray(v)) return `Field ${k} is given more than once`;
    entries.push([k, typeof v === 'string' ? v : undefined]);
  }
  return entries;
}

function fromNvp(text: string): Entries {
  if (/%(?![0-9a-f]{2})/i.test(text)) return 'Malformed NVP: a % is not followed by two hex digits';
  const entries: [string, string | undefined][] = [];
  for (const [k, v] of new URLSearchParams(text)) {
    if (k === '') return 'Malformed NVP: a pair has no name';
    entries.push([k, v.trim()]);
  }
  if (entries.length === 0) return 'Malformed NVP: no name=value pairs';
  return entries;
}
