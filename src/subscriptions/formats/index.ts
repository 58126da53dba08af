import { claimsVettingFormat } from './claims-vetting.ts';
import { fhirFormat } from './fhir.ts';
import { preAuthorizationFormat } from './pre-authorization.ts';
import type { PayloadFormat } from './format.ts';
import { tyroFormat } from './tyro.ts';

export type { FormatContext, FormatNotification, PayloadFormat } from './format.ts';

/** Every payload format a Subscription may choose; a sender-shaped one is one file and one entry. */
export const PAYLOAD_FORMATS: Readonly<Record<string, PayloadFormat>> = {
  fhir: fhirFormat,
  'claims-vetting': claimsVettingFormat,
  'pre-authorization': preAuthorizationFormat,
  tyro: tyroFormat,
};
