import type { Readable } from 'node:stream';
import { BillingFailure, beginRemittance, claimIdSystem as tenantClaimIdSystem, finishRemittance, recordClaimAdjudications } from '../../billing/index.ts';
import type { BeginOutcome, ClaimAdjudicationInput } from '../../billing/index.ts';
import type { PostgresRepository } from '../../fhir/repository.ts';
import { adjudicationInput, adjustmentDetail, currencyOf, remittanceInput, signedPayment } from './map.ts';
import type { RemittanceHeader } from './model.ts';
import { readRemittance } from './parse.ts';
import { X12BalanceError, X12Error } from './segments.ts';

/**
 * Imports one 835 file, streaming: every transaction set in it becomes one payer remittance
 * (billing/remittances.ts), all in ONE database transaction, so a file refused anywhere (the
 * envelope, a count, the balance at its SE) writes nothing. A transaction set whose payer trace
 * was imported before is read (its envelope and balance still checked) but not written again.
 */

export interface RemittanceSummary {
  traceNumber: string;
  payerId: string;
  /** created: written now; unchanged: this trace was imported before with the same content. */
  status: 'created' | 'unchanged';
  paymentAmount: string;
  paymentReconciliationId: string;
  claims: number;
  /** Claims whose ClaimResponse was written (or reversed) now, and claims waiting for their Claim. */
  applied: number;
  waiting: number;
}

export type ImportResult =
  | { ok: true; remittances: RemittanceSummary[] }
  /** 400: the file is not a well-formed 835; 409: a trace imported before with other content; 422: it does not balance. */
  | { ok: false; status: 400 | 409 | 422; message: string; segment?: string; position?: number };

export interface ImportOptions {
  /** Called after each claim is read: how many so far (claims are written in batches of CLAIM_BATCH). */
  onClaim?: (claims: number) => void;
  /** Claim.identifier system of CLP01 (a webhook source's option); absent: the tenant's claim-id system. */
  claimIdSystem?: string;
  /** Filled as the file is read: its ISA13 and GS06 control numbers (the first ENVELOPE_CAP of each). */
  envelope?: EnvelopeSeen;
  /**
   * Run in the import's own transaction: `begin` before anything is written, `end` after the last
   * transaction set, before commit (the route journals the file there, so an imported file always
   * has its journal row).
   */
  inTransaction?: {
    begin?(tx: PostgresRepository): Promise<void>;
    end?(tx: PostgresRepository, remittances: RemittanceSummary[]): Promise<void>;
  };
}

export interface EnvelopeSeen {
  interchanges: string[];
  groups: string[];
}

class Conflict extends Error {}
class Refused extends Error {}

/** Claim payments written together (one search for their claims, one statement for their rows). */
const CLAIM_BATCH = 100;

export async function importRemittance(repo: PostgresRepository, source: Readable, options: ImportOptions = {}): Promise<ImportResult> {
  let claims = 0;
  try {
    const remittances = await repo.withTransaction(async (tx) => {
      await options.inTransaction?.begin?.(tx);
      const done: RemittanceSummary[] = [];
      let header: RemittanceHeader | undefined;
      let begun: Exclude<BeginOutcome, { status: 'refused' }> | undefined;
      let summary: RemittanceSummary | undefined;
      let seq = 0;
      let batch: { seq: number; input: ClaimAdjudicationInput }[] = [];
      // The tenant's claim-id system, asked once for the file rather than once per claim.
      const claimIdSystem = options.claimIdSystem ?? (await tenantClaimIdSystem(tx.conn, tx.context.tenantId));
      const flush = async (): Promise<void> => {
        if (batch.length === 0 || begun?.status !== 'new') return;
        for (const outcome of await recordClaimAdjudications(tx, begun.remittance, batch)) {
          if (outcome.status === 'applied') summary!.applied++;
          else summary!.waiting++;
        }
        batch = [];
      };
      for await (const part of readRemittance(source, options.envelope)) {
        if (part.type === 'header') {
          header = part.header;
          const started = await beginRemittance(tx, remittanceInput(header));
          if (started.status === 'refused') throw new Refused(`Payer trace ${header.traceNumber}: ${started.message}; nothing was changed`);
          begun = started;
          seq = 0;
          summary = {
            traceNumber: header.traceNumber, payerId: header.payerId, status: begun.status === 'new' ? 'created' : 'unchanged',
            paymentAmount: signedPayment(header).toFixed(2), paymentReconciliationId: begun.paymentReconciliationId, claims: 0, applied: 0, waiting: 0,
          };
        } else if (part.type === 'claim') {
          seq++;
          summary!.claims++;
          options.onClaim?.(++claims);
          if (begun!.status !== 'new') continue;
          batch.push({ seq, input: { ...adjudicationInput(part.claim, header!.paymentDate, currencyOf(header!)), claimIdSystem } });
          if (batch.length >= CLAIM_BATCH) await flush();
        } else {
          await flush();
          if (begun!.status === 'new') {
            await finishRemittance(tx, begun!.remittanceId, { contentHash: part.end.contentHash, adjustments: part.end.adjustments.map((a) => adjustmentDetail(a, header!.paymentDate, currencyOf(header!))) });
          } else if (begun!.contentHash !== part.end.contentHash) {
            throw new Conflict(`Payer trace ${header!.traceNumber} (payer ${header!.payerId}) was imported before with other content; nothing was changed`);
          }
          done.push(summary!);
          begun = undefined;
        }
      }
      await options.inTransaction?.end?.(tx, done);
      return done;
    });
    return { ok: true, remittances };
  } catch (err) {
    if (err instanceof X12Error) {
      const status = err instanceof X12BalanceError ? 422 : 400;
      return { ok: false, status, message: err.message, ...(err.segment && { segment: err.segment }), ...(err.position && { position: err.position }) };
    }
    if (err instanceof Conflict) return { ok: false, status: 409, message: err.message };
    if (err instanceof Refused) return { ok: false, status: 400, message: err.message };
    if (err instanceof BillingFailure) return { ok: false, status: 422, message: err.message };
    throw err;
  }
}
