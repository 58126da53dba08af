import { evalFhirPath, getSearchParameters, isResourceType, OperationOutcomeError } from '@medplum/core';
import type { Claim, OperationOutcome, PaymentReconciliation, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CANONICAL_BASE,
  CLAIM_ID_SYSTEM,
  EXTENSION_URLS,
  PATIENT_CREDIT_URL,
  SUPPORTED_RESOURCE_TYPES,
  getLoadMillis,
  getOwnDefinitions,
  getSearchParametersFor,
  loadProfiles,
  validateResource,
  type AnyResource,
  type PatientCredit,
} from '../../src/profiles/index.ts';

beforeAll(() => {
  loadProfiles();
});

/** The OperationOutcome thrown by validateResource, or undefined when the resource is valid. */
function outcomeOf(resource: unknown): OperationOutcome | undefined {
  try {
    validateResource(resource as AnyResource);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(OperationOutcomeError);
    return (err as OperationOutcomeError).outcome;
  }
}

/** The expressions of the error issues. */
function errorsAt(resource: unknown): string[] {
  const outcome = outcomeOf(resource);
  expect(outcome, 'expected the resource to be invalid').toBeDefined();
  return (outcome?.issue ?? []).filter((i) => i.severity === 'error').flatMap((i) => i.expression ?? []);
}

const claim: Claim = {
  resourceType: 'Claim',
  status: 'active',
  type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
  use: 'claim',
  patient: { reference: 'Patient/p1' },
  created: '2024-05-01T10:00:00Z',
  provider: { reference: 'Organization/o1' },
  priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
  insurance: [{ sequence: 1, focal: true, coverage: { reference: 'Coverage/c1' } }],
  identifier: [{ system: CLAIM_ID_SYSTEM, value: 'BILL-1' }],
  total: { value: 120.5, currency: 'USD' },
  extension: [
    { url: EXTENSION_URLS.claimLifecycleId, valueString: 'LC-42' },
    { url: EXTENSION_URLS.patientPaidAmount, valueMoney: { value: 20, currency: 'USD' } },
  ],
};

const credit: PatientCredit = {
  resourceType: 'PatientCredit',
  identifier: [{ system: `${CANONICAL_BASE}/identifier/credit`, value: 'CR-1' }],
  status: 'partially-allocated',
  patient: { reference: 'Patient/p1' },
  amount: { value: 50, currency: 'USD' },
  balance: { value: 30, currency: 'USD' },
  source: { reference: 'PaymentReconciliation/pr1' },
  created: '2024-05-02T09:00:00Z',
  allocation: [{ claim: { reference: 'Claim/c2' }, amount: { value: 20, currency: 'USD' }, date: '2024-05-03T09:00:00Z' }],
};

describe('loadProfiles', () => {
  // Its speed is a figure for `npm run bench:startup`, not an assertion here.
  it('is idempotent: a second call loads nothing again', () => {
    loadProfiles();
    const millis = getLoadMillis();
    expect(millis).toBeDefined();
    loadProfiles();
    expect(getLoadMillis()).toBe(millis);
  });

  it('registers PatientCredit as a resource type with @medplum/core', () => {
    expect(isResourceType('PatientCredit')).toBe(true);
    expect(Object.keys(getSearchParameters('PatientCredit') ?? {})).toEqual(
      expect.arrayContaining(['_id', 'patient', 'status', 'source'])
    );
    expect(evalFhirPath('PatientCredit.allocation.amount.value', credit)).toEqual([20]);
  });

  it('indexes the R4 types we serve at start, and another R4 type when first validated', () => {
    expect(SUPPORTED_RESOURCE_TYPES.every((type) => isResourceType(type))).toBe(true);
    expect(isResourceType('Medication')).toBeFalsy();
    const withContained = { ...claim, contained: [{ resourceType: 'Medication', id: 'm1', strength: 5 }] };
    expect(errorsAt(withContained)).toEqual(['Claim.contained[0].strength']);
    expect(isResourceType('Medication')).toBe(true);
    expect(outcomeOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' } })).toBeUndefined();
    expect(errorsAt({ resourceType: 'Observation', code: { text: 'x' } })).toEqual(['Observation.status']);
  });
});

describe('validateResource: R4 types', () => {
  it('accepts a valid Claim', () => {
    expect(outcomeOf(claim)).toBeUndefined();
  });

  it('rejects a Claim without status, naming Claim.status', () => {
    const { status: _omitted, ...withoutStatus } = claim;
    const outcome = outcomeOf(withoutStatus);
    expect(outcome?.resourceType).toBe('OperationOutcome');
    expect(outcome?.issue[0].severity).toBe('error');
    expect(errorsAt(withoutStatus)).toContain('Claim.status');
  });

  it('rejects a Claim with a wrongly typed element', () => {
    expect(errorsAt({ ...claim, status: 5 })).toContain('Claim.status');
    expect(errorsAt({ ...claim, created: 'yesterday' })).toContain('Claim.created');
    const atPatient = errorsAt({ ...claim, patient: 'Patient/p1' });
    expect(atPatient.length).toBeGreaterThan(0);
    expect(atPatient.every((path) => path.startsWith('Claim.patient'))).toBe(true);
  });

  it('rejects a code outside a required binding', () => {
    expect(errorsAt({ ...claim, status: 'paid' })).toEqual(['Claim.status']);
    expect(errorsAt({ ...claim, total: { value: 1, currency: 'usd' } })).toEqual(['Claim.total.currency']);
  });

  it('rejects unknown elements, including Medplum-only meta fields', () => {
    expect(errorsAt({ ...claim, paidAmount: 3 })).toEqual(['Claim.paidAmount']);
    expect(errorsAt({ ...claim, meta: { project: 'x' } })).toEqual(['Claim.meta.project']);
  });

  it('reports every problem at once', () => {
    const { status: _s, patient: _p, ...rest } = claim;
    expect(errorsAt(rest)).toEqual(expect.arrayContaining(['Claim.status', 'Claim.patient']));
  });

  it('rejects an unknown resource type', () => {
    expect(errorsAt({ resourceType: 'Bill' })).toEqual(['resourceType']);
  });

  it('accepts other billing resources', () => {
    const resources: Resource[] = [
      { resourceType: 'Patient', name: [{ family: 'Doe', given: ['Jane'] }], gender: 'female', birthDate: '1980-02-29' },
      {
        resourceType: 'Coverage',
        status: 'active',
        beneficiary: { reference: 'Patient/p1' },
        payor: [{ reference: 'Organization/o1' }],
        subscriberId: 'S-1',
      },
      {
        resourceType: 'ClaimResponse',
        status: 'active',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
        use: 'claim',
        patient: { reference: 'Patient/p1' },
        created: '2024-05-01',
        insurer: { reference: 'Organization/o1' },
        outcome: 'complete',
        total: [
          {
            category: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/adjudication', code: 'benefit' }] },
            amount: { value: 100, currency: 'NGN' },
          },
        ],
      },
      {
        resourceType: 'Subscription',
        status: 'active',
        reason: 'billing events',
        criteria: 'Claim?status=active',
        channel: { type: 'rest-hook', endpoint: 'https://example.org/hook', payload: 'application/fhir+json' },
      },
    ];
    for (const r of resources) {
      expect(outcomeOf(r), r.resourceType).toBeUndefined();
    }
  });
});

describe('validateResource: our extensions', () => {
  const payment: PaymentReconciliation = {
    resourceType: 'PaymentReconciliation',
    status: 'active',
    created: '2024-05-01T10:00:00Z',
    paymentDate: '2024-05-01',
    paymentAmount: { value: 70, currency: 'USD' },
    outcome: 'complete',
    extension: [{ url: EXTENSION_URLS.patientPaymentIssuer, valueReference: { reference: 'Patient/p1' } }],
  };

  it('accepts them where they belong', () => {
    expect(outcomeOf(payment)).toBeUndefined();
  });

  it('rejects a wrong value type, a wrong reference target and a wrong context', () => {
    expect(errorsAt({ ...claim, extension: [{ url: EXTENSION_URLS.claimLifecycleId, valueInteger: 42 }] })).toEqual([
      'Claim.extension[0].valueInteger',
    ]);
    expect(
      errorsAt({
        ...payment,
        extension: [{ url: EXTENSION_URLS.patientPaymentIssuer, valueReference: { reference: 'Organization/o1' } }],
      })
    ).toEqual(['PaymentReconciliation.extension[0].valueReference']);
    expect(errorsAt({ ...payment, extension: [{ url: EXTENSION_URLS.claimLifecycleId, valueString: 'x' }] })).toEqual([
      'PaymentReconciliation.extension[0]',
    ]);
  });
});

describe('validateResource: PatientCredit', () => {
  it('accepts a valid PatientCredit, with or without meta.profile', () => {
    expect(outcomeOf(credit)).toBeUndefined();
    expect(outcomeOf({ ...credit, meta: { profile: [PATIENT_CREDIT_URL] } })).toBeUndefined();
  });

  it('ignores a meta.profile we do not know', () => {
    expect(outcomeOf({ ...claim, meta: { profile: ['http://example.org/StructureDefinition/other'] } })).toBeUndefined();
  });

  it('rejects a meta.profile of ours that is for another type', () => {
    expect(errorsAt({ ...claim, meta: { profile: [PATIENT_CREDIT_URL] } })).toEqual(['Claim.meta.profile[0]']);
  });

  it('rejects a PatientCredit without patient', () => {
    const { patient: _omitted, ...withoutPatient } = credit;
    expect(errorsAt(withoutPatient)).toEqual(['PatientCredit.patient']);
  });

  it('rejects a bad status code', () => {
    const outcome = outcomeOf({ ...credit, status: 'spent' });
    expect(outcome?.issue).toEqual([
      expect.objectContaining({ severity: 'error', code: 'code-invalid', expression: ['PatientCredit.status'] }),
    ]);
  });

  it('rejects an unknown element', () => {
    expect(errorsAt({ ...credit, remaining: 30 })).toEqual(['PatientCredit.remaining']);
  });

  it('checks allocations', () => {
    expect(errorsAt({ ...credit, allocation: [{ claim: { reference: 'Claim/c2' }, amount: { value: '20' } }] })).toEqual(
      expect.arrayContaining(['PatientCredit.allocation[0].amount.value', 'PatientCredit.allocation[0].date'])
    );
  });
});

describe('getSearchParametersFor', () => {
  it('has the standard and our Claim parameters', () => {
    const params = getSearchParametersFor('Claim');
    expect(Object.keys(params)).toEqual(
      expect.arrayContaining(['identifier', 'patient', 'status', 'lifecycle', '_id', '_lastUpdated', '_tag', '_profile'])
    );
    expect(params._lastUpdated.expression).toBe('Claim.meta.lastUpdated');
    expect(params.lifecycle.url).toBe(`${CANONICAL_BASE}/SearchParameter/Claim-lifecycle`);
    expect(params).not.toHaveProperty('_project');
    expect(params).not.toHaveProperty('_compartment');
  });

  it('has the PatientCredit parameters', () => {
    const params = getSearchParametersFor('PatientCredit');
    expect(Object.keys(params)).toEqual(
      expect.arrayContaining(['patient', 'status', 'source', 'identifier', 'created', '_id', '_lastUpdated'])
    );
    expect(params.patient.type).toBe('reference');
  });

  it('is empty for an unknown type', () => {
    expect(getSearchParametersFor('Bill')).toEqual({});
  });

  it('evaluates every expression with FHIRPath', () => {
    for (const type of SUPPORTED_RESOURCE_TYPES) {
      for (const sp of Object.values(getSearchParametersFor(type))) {
        expect(() => evalFhirPath(sp.expression as string, { resourceType: type }), `${type}.${sp.code}`).not.toThrow();
      }
    }
  });

  it('evaluates lifecycle on a Claim carrying the extension', () => {
    const lifecycle = getSearchParametersFor('Claim').lifecycle;
    expect(evalFhirPath(lifecycle.expression as string, claim)).toEqual(['LC-42']);
    expect(evalFhirPath(lifecycle.expression as string, { ...claim, extension: [] })).toEqual([]);
    const meta = { id: 'c1', meta: { lastUpdated: '2024-05-01T10:00:00Z' } };
    expect(evalFhirPath(getSearchParametersFor('Claim')._id.expression as string, { ...claim, ...meta })).toEqual(['c1']);
    expect(evalFhirPath(getSearchParametersFor('PatientCredit').status.expression as string, credit)).toEqual([
      'partially-allocated',
    ]);
  });
});

describe('getOwnDefinitions', () => {
  const own = getOwnDefinitions();
  const byType = (type: string): Resource[] => own.filter((r) => r.resourceType === type);

  it('has all our definitions under our canonical base', () => {
    // PatientCredit, three billing extensions, four payment extensions (card brand, last four,
    // authorization code, settlement date), five Subscription extensions, two payment-plan extensions,
    // six payer-decision extensions (claim-pile-id, claim-item-ref, review-opened-at, floating-enrollee,
    // enrollee-status, adjudication-final)
    expect(byType('StructureDefinition')).toHaveLength(21);
    // Claim lifecycle, five PatientCredit parameters, Claim and ClaimResponse pile
    expect(byType('SearchParameter')).toHaveLength(8);
    // patient-credit-status, record-kind (Basic.code of payment plans), vetting-decision (Curacel)
    expect(byType('CodeSystem')).toHaveLength(3);
    expect(byType('ValueSet')).toHaveLength(1);
    // the Cair claim-id system, the payment-trace-id system, the InstaMed payment-plan id system,
    // eight Curacel systems (claim, provider id and code, enrollee, insurance no, HMO, PA id, webhook
    // source), two X12 835 (payer claim control number, payer id) and two Tyro (transaction, funder)
    expect(byType('NamingSystem')).toHaveLength(15);
    for (const r of own) {
      if ('url' in r && r.url) {
        expect(r.url.startsWith(`${CANONICAL_BASE}/${r.resourceType}/`), r.url).toBe(true);
      }
    }
    const urls = byType('StructureDefinition').map((r) => (r as StructureDefinition).url);
    expect(urls).toEqual(expect.arrayContaining([PATIENT_CREDIT_URL, ...Object.values(EXTENSION_URLS)]));
  });

  it('publishes PatientCredit under our URL', () => {
    const sd = own.find((r) => r.resourceType === 'StructureDefinition' && r.id === 'PatientCredit') as StructureDefinition;
    expect(sd.url).toBe(PATIENT_CREDIT_URL);
    expect(sd.snapshot?.element.map((e) => e.path)).toEqual(
      expect.arrayContaining(['PatientCredit.id', 'PatientCredit.modifierExtension', 'PatientCredit.allocation.date'])
    );
  });

  it('names the Cair claim-id system', () => {
    const ns = byType('NamingSystem')[0] as { uniqueId: { value: string }[] };
    expect(ns.uniqueId[0].value).toBe(CLAIM_ID_SYSTEM);
  });

  it('are valid R4 resources', () => {
    for (const r of own) {
      expect(outcomeOf(r), `${r.resourceType}/${r.id}`).toBeUndefined();
    }
  });

  it('returns copies', () => {
    (getOwnDefinitions()[0] as { id?: string }).id = 'changed';
    expect(getOwnDefinitions()[0].id).not.toBe('changed');
  });
});
