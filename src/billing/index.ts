// Billing: the money domain. Claim lookup, lifecycle and patient responsibility, payment application,
// PatientCredit and its allocation, the ledger. No HTTP: senders (inbound/) and FHIR operations call
// these commands with a repository of the caller's tenant.
export { applyPatientPayment, paymentKey } from './payments.ts';
export type { PatientPaymentInput, PatientPaymentOutcome } from './payments.ts';
export { allocateCredit } from './credits.ts';
export type { AllocateCreditInput, AllocateCreditOutcome } from './credits.ts';
export { checkBooks } from './check.ts';
export { addBillingOperations } from './operations.ts';
export { BillingFailure, refuse } from './result.ts';
export type { BillingResult, Refusal, RefusalCode } from './result.ts';
export { CURRENCY, MAX_AMOUNT, MINOR_DIGITS, amount, toJsonNumber } from './money.ts';
export type { Amount } from './money.ts';
export { claimIdSystem, setClaimIdSystem } from './store.ts';
export { MEMBER_LIABILITY } from './claims.ts';
export { PAYMENT_METHOD_EXTENSION, PAYMENT_TRACE_ID_SYSTEM } from './resources.ts';
