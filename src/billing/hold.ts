import { randomUUID } from 'node:crypto';
import type { PostgresRepository } from '../fhir/repository.ts';
import type { Amount } from './money.ts';
import type { PatientPaymentInput } from './payments.ts';
import { findUnmatchedByKey, insertUnmatched, resolveUnmatched, updateUnmatchedInput } from './suspense-store.ts';
import type { HoldMode } from './suspense-store.ts';

/** A payment kept for a claim that is not here (yet): nothing moved, nothing on the books. */
export interface UnmatchedPaymentOutcome {
  status: 'unmatched';
  unmatchedPaymentId: string;
  billId: string;
  amount: Amount;
  mode: HoldMode;
  /** new: first seen; unchanged: the same payment again; updated: a resend that changed it. */
  held: 'new' | 'unchanged' | 'updated';
  /** waiting, or already applied / discarded by an operator (a late resend of it). */
  unmatchedStatus: 'waiting' | 'applied' | 'discarded';
}

/** Equal as JSON values, whatever the order of keys (jsonb does not keep it). */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/** The payment command as stored, to run again when its claim exists (amount as decimal text). */
export function storedInput(input: PatientPaymentInput): Record<string, unknown> {
  const { whenClaimUnknown: _mode, amount, ...rest } = input;
  return { ...rest, amount: amount.toFixed(2) };
}

/**
 * Keeps a payment whose bill id matches no claim, under its payment identity (the caller holds the
 * key lock). Again with the same identity: unchanged, or (while waiting) its amount and details
 * are replaced, as a resend would change an applied payment.
 */
export async function holdPayment(repo: PostgresRepository, key: string, input: PatientPaymentInput, mode: HoldMode): Promise<UnmatchedPaymentOutcome> {
  const tenantId = repo.context.tenantId;
  const stored = storedInput(input);
  const base = { status: 'unmatched' as const, billId: input.billId, amount: input.amount };
  const existing = await findUnmatchedByKey(repo.conn, tenantId, key);
  if (!existing) {
    const id = randomUUID();
    await insertUnmatched(repo.conn, tenantId, { id, paymentKey: key, source: input.source, billId: input.billId, mode, amount: input.amount, input: stored });
    return { ...base, unmatchedPaymentId: id, mode, held: 'new', unmatchedStatus: 'waiting' };
  }
  const same = sameJson(existing.input, { ...existing.input, ...stored }) && existing.billId === input.billId;
  if (same || existing.status !== 'waiting') {
    return { ...base, amount: existing.amount, unmatchedPaymentId: existing.id, mode: existing.mode, held: 'unchanged', unmatchedStatus: existing.status };
  }
  await updateUnmatchedInput(repo.conn, tenantId, existing.id, input.amount, { ...existing.input, ...stored });
  return { ...base, unmatchedPaymentId: existing.id, mode: existing.mode, held: 'updated', unmatchedStatus: 'waiting' };
}

/** A payment just recorded under `key`: a held copy of it that still waits is marked applied as it. */
export async function settleHeld(repo: PostgresRepository, key: string, paymentId: string): Promise<void> {
  const held = await findUnmatchedByKey(repo.conn, repo.context.tenantId, key);
  if (held?.status === 'waiting') await resolveUnmatched(repo.conn, repo.context.tenantId, held.id, { status: 'applied', paymentId });
}
