// Billing: the money domain. Claim lookup, lifecycle and patient responsibility, payers' adjudications, payment application,
// reversals and settlement, unmatched payments, PatientCredit and its allocation, the ledger. No
// HTTP: senders (inbound/) and FHIR operations call these commands with a repository of the
// caller's tenant.
export { applyPatientPayment, paymentKey } from './payments.ts';
export type { AppliedPaymentOutcome, PatientPaymentInput, PatientPaymentOutcome, UnmatchedPaymentOutcome } from './payments.ts';
export { reversePayment } from './reversals.ts';
export type { ReversalInput, ReversalOutcome } from './reversals.ts';
export { recordSettlement } from './settlement.ts';
export type { SettlementInput, SettlementOutcome } from './settlement.ts';
export type { ReversalKind, HoldMode } from './suspense-store.ts';
export type { PaymentIdentifier, PaymentInstrument } from './store.ts';
export { applyUnmatchedPayment, discardUnmatchedPayment, listUnmatchedPayments, unmatchedPaymentTenant } from './unmatched.ts';
export type { AppliedUnmatchedOutcome, UnmatchedPaymentView } from './unmatched.ts';
export { billingObserver } from './observer.ts';
export { allocateCredit } from './credits.ts';
export type { AllocateCreditInput, AllocateCreditOutcome } from './credits.ts';
export { checkBooks } from './check.ts';
export { patientBalance } from './balance.ts';
export type { LifecycleBalance, PatientBalance } from './balance.ts';
export { addBillingOperations } from './operations.ts';
export { BillingFailure, refuse } from './result.ts';
export type { BillingResult, Refusal, RefusalCode } from './result.ts';
export { CURRENCY, MAX_AMOUNT, MINOR_DIGITS, amount, bookCurrencyProblem, fixed, formatMoney, maxAmount, toJsonNumber } from './money.ts';
export type { Amount } from './money.ts';
export { bookCurrency } from './currency-store.ts';
export { changeBookCurrency } from './book-currency.ts';
export { claimIdSystem, setClaimIdSystem } from './store.ts';
export { MEMBER_LIABILITY, memberLiabilityOf } from './claims.ts';
export { PAYMENT_EXTENSIONS, PAYMENT_METHOD_EXTENSION, PAYMENT_TRACE_ID_SYSTEM } from './resources.ts';
export { PAYER_CLAIM_ID_SYSTEM, applyWaitingRemittanceClaims, listWaitingClaimPayments, beginRemittance, finishRemittance, recordClaimAdjudication, recordClaimAdjudications, traceKey } from './remittances.ts';
export type { BeginOutcome, ClaimAdjudicationInput, ClaimAdjudicationOutcome, PartyInput, RemittanceInput, RemittanceRef, WaitingClaimPaymentView } from './remittances.ts';
export { PAYMENT_TYPE_SYSTEM } from './resources.ts';
export { ZERO, fhirMoney } from './money.ts';
export { ADJUDICATION_FINAL, recordPayerDecision } from './payer-decisions.ts';
export type { PayerDecisionInput, PayerDecisionOutcome, Parties, PartyDraft } from './payer-decisions.ts';
export { recordAdjudication } from './adjudication.ts';
export type { AdjudicationInput, AdjudicationOutcome } from './adjudication.ts';
export type { AdjudicatedItem, AdjudicationAmount, AdjudicationCategory, InsurerPayment, InsurerRef } from './adjudication-resources.ts';
