import type {
  Claim,
  Extension,
  Identifier,
  Meta,
  Money,
  Narrative,
  Patient,
  PaymentReconciliation,
  Reference,
  Resource,
} from '@medplum/fhirtypes';

/** Values of PatientCredit.status (CodeSystem patient-credit-status). */
export type PatientCreditStatus = 'unallocated' | 'partially-allocated' | 'allocated' | 'reversed';

/** One application of a credit to a claim. */
export interface PatientCreditAllocation {
  id?: string;
  extension?: Extension[];
  modifierExtension?: Extension[];
  claim: Reference<Claim>;
  amount: Money;
  /** FHIR dateTime. */
  date: string;
}

/**
 * Our custom resource (fhir-profiles/StructureDefinition-PatientCredit.json). Not part of
 * @medplum/fhirtypes' `Resource` union: code that handles "any stored resource" can use
 * {@link AnyResource}.
 */
export interface PatientCredit {
  resourceType: 'PatientCredit';
  id?: string;
  meta?: Meta;
  implicitRules?: string;
  language?: string;
  text?: Narrative;
  contained?: Resource[];
  extension?: Extension[];
  modifierExtension?: Extension[];
  identifier?: Identifier[];
  status: PatientCreditStatus;
  patient: Reference<Patient>;
  /** The original credit. */
  amount: Money;
  /** What is left to allocate. */
  balance: Money;
  source?: Reference<PaymentReconciliation>;
  /** FHIR dateTime. */
  created: string;
  allocation?: PatientCreditAllocation[];
}

/** A resource this server may hold: any R4 resource, or one of our custom resources. */
export type AnyResource = Resource | PatientCredit;
