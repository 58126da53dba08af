import { doubleMetaphone } from 'double-metaphone';
import { normalizeString } from './index-values.ts';

/**
 * The `phonetic` search (Patient, Person, Practitioner, RelatedPerson): each word of a name as its
 * Double Metaphone keys (primary and alternate), so Smith, Smyth and Schmidt meet. The index holds
 * the keys of every word; a search matches a resource having a key of any word searched.
 */
export function phoneticKeys(text: string): string[] {
  const keys = new Set<string>();
  for (const word of normalizeString(text).split(/[^a-z]+/)) {
    if (!word) continue;
    for (const key of doubleMetaphone(word)) if (key) keys.add(key);
  }
  return [...keys];
}
