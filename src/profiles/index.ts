// FHIR definitions for fhir-billing: loading (R4 base + fhir-profiles/) and validation.
export {
  CANONICAL_BASE,
  CLAIM_ID_SYSTEM,
  EXTENSION_URLS,
  PATIENT_CREDIT_STATUS_SYSTEM,
  PATIENT_CREDIT_STATUS_VALUESET,
  PATIENT_CREDIT_URL,
  SUPPORTED_RESOURCE_TYPES,
} from './constants.ts';
export {
  FHIR_PROFILES_DIR,
  getLoadMillis,
  getOwnDefinitions,
  getOwnDefinitionsBundle,
  getOwnStructureDefinition,
  getPatientCreditDefinition,
  getSearchParametersFor,
  loadProfiles,
} from './load.ts';
export { validateResource } from './validate.ts';
export type { AnyResource, PatientCredit, PatientCreditAllocation, PatientCreditStatus } from './types.ts';
