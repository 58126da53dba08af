import type { SearchRequest } from '@medplum/core';
import { invalid, splitValues } from './conditions.ts';

/**
 * What one search may ask, so that no request costs more than its size warrants and no value
 * reaches PostgreSQL that it would refuse with an error (a 500) instead of a non-match.
 */
export const SEARCH_LIMITS = {
  /** Comma-separated values of every parameter together (OR values and repeated parameters). */
  values: 1_000,
  /** Characters of one value. */
  valueLength: 1_024,
  /** Deepest `_offset`: offset paging reads and drops every row before the page. */
  offset: 100_000,
} as const;

/** NUL (PostgreSQL text cannot hold it) or a UTF-16 surrogate without its pair (not Unicode). */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Throws a 400 OperationOutcome for a search beyond the limits or holding text PostgreSQL cannot take. */
export function assertSearchInput(request: SearchRequest): void {
  let values = 0;
  for (const filter of request.filters ?? []) {
    assertStorable(filter.code, 'A search parameter name');
    assertStorable(filter.value, `The value of '${filter.code}'`);
    for (const value of splitValues(filter.value)) {
      if (value.length > SEARCH_LIMITS.valueLength) {
        throw invalid(`A value of '${filter.code}' is longer than ${SEARCH_LIMITS.valueLength} characters`);
      }
      values++;
    }
    if (values > SEARCH_LIMITS.values) {
      throw invalid(`A search may hold at most ${SEARCH_LIMITS.values} values (counting every comma-separated value of every parameter)`);
    }
  }
  for (const rule of request.sortRules ?? []) assertStorable(rule.code, '_sort');
  for (const field of request.fields ?? []) assertStorable(field, '_elements');
  assertPaging(request.offset);
}

/** `_offset` as a non-negative integer no deeper than the limit. */
export function assertPaging(offset: number | undefined): void {
  if (offset === undefined) return;
  if (!Number.isSafeInteger(offset) || offset < 0) throw invalid('_offset must be a non-negative integer');
  if (offset > SEARCH_LIMITS.offset) throw invalid(`_offset may be at most ${SEARCH_LIMITS.offset}; narrow the search instead`);
}

export function assertStorable(text: string, what: string): void {
  if (UNSTORABLE.test(text)) throw invalid(`${what} holds a NUL character or an unpaired UTF-16 surrogate`);
}

/**
 * Why a raw query string (or form body) cannot be read, if it cannot: a percent-escape that is
 * not one, or bytes that are not UTF-8 (a lone surrogate sent as its CESU-8 bytes). URL parsers
 * would quietly turn these into U+FFFD and search for that.
 */
export function malformedQuery(query: string): string | undefined {
  for (const part of query.split('&')) {
    try {
      decodeURIComponent(part.replace(/\+/g, ' '));
    } catch {
      return `Malformed query: '${part.slice(0, 80)}' is not percent-encoded UTF-8`;
    }
  }
  return undefined;
}
