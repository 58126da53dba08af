import type { Amount } from '../../billing/index.ts';

/**
 * An 835 (005010X221A1) as the parser hands it on, one piece at a time so nothing grows with the
 * file: a transaction set's header (BPR, TRN, payer and payee), then its claims one by one, then
 * its end (PLB and the balance, checked). Element names in comments are the X12 ones.
 */

export interface Party {
  /** N102 */
  name: string;
  /** N103 qualifier and N104 id (XV CMS plan id, PI payer id, XX NPI, FI tax id). */
  idQualifier?: string;
  id?: string;
}

export interface RemittanceHeader {
  /** ST02, and the segment position of ST. */
  controlNumber: string;
  position: number;
  /** BPR01: C payment with advice, I remittance only, H notification only... */
  handling: string;
  /** BPR02 total actual provider payment. */
  paymentAmount: Amount;
  /** BPR03: C credit, D debit. */
  creditDebit: string;
  /** BPR04: ACH, CHK, FWT, BOP, NON. */
  method: string;
  /** BPR16 as YYYY-MM-DD. */
  paymentDate: string;
  /** TRN02 check or EFT trace number, TRN03 the payer's id (originating company). */
  traceNumber: string;
  payerId: string;
  payer: Party;
  payee: Party;
  /** DTM*405 production date, YYYY-MM-DD. */
  productionDate?: string;
  /** CUR02, when the 835 names its currency (CUR*PR*USD). */
  currency?: string;
}

export interface Adjustment {
  /** CAS01: CO, PR, OA, PI, CR. */
  group: string;
  /** CARC. */
  reason: string;
  amount: Amount;
  quantity?: string;
}

export interface ServiceLine {
  position: number;
  /** SVC01: qualifier (HC, AD, ...), code, modifiers. */
  procedure: { qualifier: string; code: string; modifiers: string[] };
  charge: Amount;
  paid: Amount;
  /** SVC05 units paid. */
  units?: string;
  /** REF*6R line item control number. */
  lineControl?: string;
  /** DTM*472 (or 150) service date. */
  serviceDate?: string;
  adjustments: Adjustment[];
  /** LQ*HE remark codes (RARC). */
  remarks: string[];
}

export interface ClaimPayment {
  position: number;
  /** CLP01 patient control number: our claim's bill id. */
  patientControlNumber: string;
  /** CLP02: 1, 2, 3 processed (primary, secondary, tertiary), 4 denied, 19-21 forwarded, 22 reversal. */
  status: string;
  charge: Amount;
  paid: Amount;
  /** CLP05, zero when absent. */
  patientResponsibility: Amount;
  /** CLP06 claim filing indicator. */
  filingIndicator?: string;
  /** CLP07 payer claim control number. */
  payerClaimControlNumber?: string;
  /** CLP09 claim frequency code. */
  frequency?: string;
  /** NM1*QC patient name as the payer has it. */
  patientName?: string;
  /** Claim-level CAS. */
  adjustments: Adjustment[];
  /** MOA / MIA remark codes (RARC). */
  remarks: string[];
  /** DTM*232 / 233 statement period. */
  statementFrom?: string;
  statementTo?: string;
  services: ServiceLine[];
}

export interface ProviderAdjustment {
  position: number;
  /** PLB01 provider id, PLB02 fiscal period date. */
  providerId: string;
  date?: string;
  /** PLB03-1 reason (WO, FB, L6, 72, CS, ...), PLB03-2 its reference. */
  reason: string;
  reference?: string;
  /** Positive: taken from the payment; negative: added to it. */
  amount: Amount;
}

export interface RemittanceEnd {
  controlNumber: string;
  adjustments: ProviderAdjustment[];
  claimCount: number;
  /** sha-256 of the transaction set's segments, for recognising the same trace sent again. */
  contentHash: string;
}

export type RemittancePart =
  | { type: 'header'; header: RemittanceHeader }
  | { type: 'claim'; claim: ClaimPayment }
  | { type: 'end'; end: RemittanceEnd };
