import { randomUUID } from 'node:crypto';
import type { Claim, Patient } from '@medplum/fhirtypes';
import { CLAIM_ID_SYSTEM } from '../../src/profiles/index.ts';

export { CLAIM_ID_SYSTEM };

export function patient(family = 'Smith'): Patient {
  return { resourceType: 'Patient', name: [{ family, given: ['Ann'] }], birthDate: '1980-04-02' };
}

/** A valid R4 Claim; `billId` becomes its claim-id identifier. The benchmark builds its Claims with it too. */
export function claim(patientRef: string, billId: string = randomUUID(), created = '2024-05-01'): Claim {
  return {
    resourceType: 'Claim',
    status: 'active',
    identifier: [{ system: CLAIM_ID_SYSTEM, value: billId }],
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
    use: 'claim',
    patient: { reference: patientRef },
    created,
    provider: { display: 'Clinic' },
    priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
    insurance: [{ sequence: 1, focal: true, coverage: { display: 'Coverage' } }],
    total: { value: 125.5, currency: 'USD' },
  };
}
