import type { AccessPolicy, ScopeInteraction } from '../fhir/access.ts';
import { SUPPORTED_RESOURCE_TYPES } from '../profiles/index.ts';

/**
 * SMART on FHIR system scopes (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
 *   v2  system/<Type|*>.<cruds>   the letters in this order, any non-empty subset (system/Claim.rs)
 *   v1  system/<Type|*>.read      = .rs     system/<Type|*>.write = .cud     system/<Type|*>.* = .cruds
 * plus two of ours: `admin` (the /admin API, every tenant: an operator's scope) and `webhook`
 * (inbound payment webhooks, as an alternative to system/PaymentReconciliation.c).
 * Patient and user scopes, and v2 scopes with search constraints (`?param=`), are not supported.
 */
export const ADMIN_SCOPE = 'admin';
export const WEBHOOK_SCOPE = 'webhook';
/** What the bootstrap client holds; also what `scopes_supported` advertises first. */
export const ALL_FHIR_SCOPE = 'system/*.cruds';
export const DEFAULT_CLIENT_SCOPES: readonly string[] = [ALL_FHIR_SCOPE];

const SPECIAL = new Set([ADMIN_SCOPE, WEBHOOK_SCOPE]);
const V1: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };
const SCOPE_PATTERN = /^system\/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)$/;
const knownTypes = new Set(SUPPORTED_RESOURCE_TYPES);

interface ResourceScope {
  resourceType: string; // or '*'
  interactions: ReadonlySet<ScopeInteraction>;
}

/** One scope string, or undefined when it is not one we grant. */
function parseOne(text: string): ResourceScope | 'special' | undefined {
  if (SPECIAL.has(text)) return 'special';
  const m = SCOPE_PATTERN.exec(text);
  if (!m || m[2] === '') return undefined;
  const [, resourceType, action] = m;
  if (resourceType !== '*' && !knownTypes.has(resourceType)) return undefined;
  const letters = V1[action] ?? action;
  return { resourceType, interactions: new Set(letters.split('') as ScopeInteraction[]) };
}

/** Splits a space-separated scope parameter (or takes a list); refuses unknown or malformed scopes. */
export function parseScopes(input: string | readonly string[]): { scopes: ScopeSet } | { invalid: string[] } {
  const list = typeof input === 'string' ? input.split(' ').filter((s) => s.length > 0) : [...input];
  const invalid = list.filter((s) => parseOne(s) === undefined);
  return invalid.length > 0 ? { invalid } : { scopes: new ScopeSet(list) };
}

/** A set of valid scopes; as an AccessPolicy it answers what the FHIR repository asks. */
export class ScopeSet implements AccessPolicy {
  readonly list: readonly string[];
  readonly #special: Set<string>;
  readonly #resource: ResourceScope[];

  /** `list` must hold only valid scopes (from parseScopes or our own constants). */
  constructor(list: readonly string[]) {
    this.list = [...new Set(list)];
    this.#special = new Set();
    this.#resource = [];
    for (const text of this.list) {
      const parsed = parseOne(text);
      if (parsed === 'special') this.#special.add(text);
      else if (parsed) this.#resource.push(parsed);
    }
  }

  has(special: string): boolean {
    return this.#special.has(special);
  }

  allows(resourceType: string, interaction: ScopeInteraction): boolean {
    return this.#resource.some((s) => (s.resourceType === '*' || s.resourceType === resourceType) && s.interactions.has(interaction));
  }

  /** Whether everything `scope` permits is already permitted here (system/Claim.rs is within system/*.read). */
  covers(scope: string): boolean {
    const parsed = parseOne(scope);
    if (parsed === undefined) return false;
    if (parsed === 'special') return this.has(scope);
    return [...parsed.interactions].every((i) =>
      parsed.resourceType === '*'
        ? this.#resource.some((s) => s.resourceType === '*' && s.interactions.has(i))
        : this.allows(parsed.resourceType, i),
    );
  }

  /** The scopes of `this` that `granted` covers: what a token keeps when its client's grants shrink. */
  within(granted: ScopeSet): ScopeSet {
    return new ScopeSet(this.list.filter((s) => granted.covers(s)));
  }

  toString(): string {
    return this.list.join(' ');
  }
}
