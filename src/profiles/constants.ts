/** Our canonical base: every URL we define (profiles, extensions, search parameters, code systems) starts with it. */
export const CANONICAL_BASE = 'https://fhir-billing.org/fhir';

/** Canonical URL of the PatientCredit resource definition (fhir-profiles/StructureDefinition-PatientCredit.json). */
export const PATIENT_CREDIT_URL = `${CANONICAL_BASE}/StructureDefinition/PatientCredit`;

/** Our extension URLs (fhir-profiles/StructureDefinition-<id>.json). */
export const EXTENSION_URLS: {
  readonly claimLifecycleId: string;
  readonly patientPaidAmount: string;
  readonly patientPaymentIssuer: string;
} = Object.freeze({
  /** On Claim, valueString: groups the claims of one billing lifecycle. */
  claimLifecycleId: `${CANONICAL_BASE}/StructureDefinition/claim-lifecycle-id`,
  /** On Claim, valueMoney: what the patient has paid towards the claim's lifecycle. */
  patientPaidAmount: `${CANONICAL_BASE}/StructureDefinition/patient-paid-amount`,
  /** On PaymentReconciliation, valueReference(Patient): the patient who paid (R4 paymentIssuer allows only Organization). */
  patientPaymentIssuer: `${CANONICAL_BASE}/StructureDefinition/patient-payment-issuer`,
});

/** Code system and value set of PatientCredit.status. */
export const PATIENT_CREDIT_STATUS_SYSTEM = `${CANONICAL_BASE}/CodeSystem/patient-credit-status`;
export const PATIENT_CREDIT_STATUS_VALUESET = `${CANONICAL_BASE}/ValueSet/patient-credit-status`;

/** Identifier system of Cair Health claim ids (Claim.identifier; fhir-profiles/NamingSystem-cair-claim-id.json). */
export const CLAIM_ID_SYSTEM = 'https://fhir.cairhealth.com/fhir/identifier/claim-id';

/** The resource types this server stores and serves. */
export const SUPPORTED_RESOURCE_TYPES: readonly string[] = Object.freeze([
  'Patient',
  'RelatedPerson',
  'Organization',
  'Practitioner',
  'PractitionerRole',
  'Location',
  'Encounter',
  'Coverage',
  'Claim',
  'ClaimResponse',
  'PaymentReconciliation',
  'PaymentNotice',
  'Subscription',
  'PatientCredit',
  // Records beside the books with no R4 resource of their own (payment plans: inbound/instamed/plans.ts).
  'Basic',
]);
