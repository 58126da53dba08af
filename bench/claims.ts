import { createHash } from 'node:crypto';
import type { Claim } from '@medplum/fhirtypes';
import { CLAIM_ID_SYSTEM } from '../src/profiles/index.ts';
import { claim } from '../test/support/fixtures.ts';

export { CLAIM_ID_SYSTEM };

/** Seeded claims point at this many distinct patients (created through the API by the transaction phase). */
export const PATIENTS = 10_000;
const DAY_MS = 86_400_000;
const YEAR_START = Date.UTC(2024, 0, 1);

/**
 * A UUID (v4 layout) derived from `salt`, `kind` and `n`, so seeded ids and identifier values can be
 * recomputed for any n instead of kept in memory; as uniformly spread in an index as randomUUID().
 */
export function uuidFor(salt: string, kind: string, n: number): string {
  const h = createHash('md5').update(`${salt}:${kind}:${n}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[parseInt(h[16], 16) & 3]}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A valid R4 Claim (test/support/fixtures.ts), its date and total varied a little by `n`. */
export function claimResource(patientRef: string, billId: string, n: number): Claim {
  const created = new Date(YEAR_START + (n % 366) * DAY_MS).toISOString().slice(0, 10);
  return { ...claim(patientRef, billId, created), total: { value: 50 + (n % 2000) / 4, currency: 'USD' } };
}

/** Seeded claim number n: its id, its claim-id identifier value and its patient. */
export function seededClaim(salt: string, n: number): { id: string; billId: string; patientRef: string } {
  return {
    id: uuidFor(salt, 'claim', n),
    billId: uuidFor(salt, 'bill', n),
    patientRef: `Patient/${seededPatientId(salt, n % PATIENTS)}`,
  };
}

/** The id of seeded patient k (0 ≤ k < PATIENTS). */
export function seededPatientId(salt: string, k: number): string {
  return uuidFor(salt, 'patient', k);
}
