import { OperationOutcomeError } from '@medplum/core';
import type { ClaimResponse, CodeSystem, Coverage, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, it } from 'vitest';
import { ADJUDICATION_FINAL } from '../../src/billing/payer-decisions.ts';
import { PAYER_CLAIM_ID_SYSTEM } from '../../src/billing/remittances.ts';
import { PAYMENT_EXTENSIONS, PAYMENT_TRACE_ID_SYSTEM } from '../../src/billing/resources.ts';
import { CURACEL } from '../../src/formats/curacel.ts';
import {
  INSTAMED_PAYMENT_PLAN_SYSTEM,
  PAYMENT_PLAN_INSTALLMENTS_EXTENSION,
  PAYMENT_PLAN_TYPE_EXTENSION,
  RECORD_KIND_SYSTEM,
} from '../../src/inbound/instamed/plans.ts';
import { TYRO_FUNDER_SYSTEM, TYRO_TRANSACTION_SYSTEM } from '../../src/inbound/tyro/map.ts';
import { X12 } from '../../src/inbound/x12-835/map.ts';
import { CANONICAL_BASE, CLAIM_ID_SYSTEM, EXTENSION_URLS, getOwnDefinitions, loadProfiles, validateResource } from '../../src/profiles/index.ts';
import type { AnyResource } from '../../src/profiles/index.ts';
import { SUBSCRIPTION_EXTENSIONS } from '../../src/subscriptions/definition.ts';

/** The URLs of ours that the senders and the books write have a definition in fhir-profiles/, and the validator holds writes to them. */
beforeAll(() => loadProfiles());

const own = (): Resource[] => getOwnDefinitions();
const canonicals = (type: string): string[] => own().filter((r) => r.resourceType === type).map((r) => (r as { url: string }).url);
const namingSystems = (): string[] =>
  own().flatMap((r) => (r.resourceType === 'NamingSystem' ? r.uniqueId.map((u) => u.value) : []));

/** The expressions of the error issues of validateResource (none when it does not throw). */
function errorsAt(resource: unknown): string[] {
  try {
    validateResource(resource as AnyResource);
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(OperationOutcomeError);
    return (err as OperationOutcomeError).outcome.issue.filter((i) => i.severity === 'error').flatMap((i) => i.expression ?? []);
  }
}

const ours = (url: string) => url.startsWith(`${CANONICAL_BASE}/`);

describe('every URL of ours in use is defined', () => {
  it('extensions: a StructureDefinition each', () => {
    const used = [
      CURACEL.pileId,
      CURACEL.itemRef,
      CURACEL.adjudicationFinal,
      CURACEL.reviewOpenedAt,
      CURACEL.floatingEnrollee,
      CURACEL.enrolleeStatus,
      ADJUDICATION_FINAL,
      ...Object.values(EXTENSION_URLS),
      ...Object.values(PAYMENT_EXTENSIONS),
      PAYMENT_PLAN_TYPE_EXTENSION,
      PAYMENT_PLAN_INSTALLMENTS_EXTENSION,
      ...Object.values(SUBSCRIPTION_EXTENSIONS).flat().filter(ours),
    ];
    expect(used.filter((u) => !canonicals('StructureDefinition').includes(u))).toEqual([]);
  });

  it('code systems: a CodeSystem each, with the codes written', () => {
    expect([CURACEL.decisionSystem, RECORD_KIND_SYSTEM].filter((u) => !canonicals('CodeSystem').includes(u))).toEqual([]);
    const vetting = own().find((r) => r.resourceType === 'CodeSystem' && r.url === CURACEL.decisionSystem) as CodeSystem;
    // src/inbound/curacel/vetting.ts: approval_status 1, 0, null
    expect(vetting.concept?.map((c) => c.code)).toEqual(['approved', 'rejected', 'pending']);
  });

  it('identifier systems: a NamingSystem each', () => {
    const used = [
      CURACEL.claimIdSystem,
      CURACEL.providerIdSystem,
      CURACEL.providerCodeSystem,
      CURACEL.enrolleeIdSystem,
      CURACEL.insuranceNoSystem,
      CURACEL.hmoCodeSystem,
      CURACEL.paIdSystem,
      CURACEL.webhookSourceSystem,
      PAYER_CLAIM_ID_SYSTEM,
      X12.payerId,
      TYRO_TRANSACTION_SYSTEM,
      TYRO_FUNDER_SYSTEM,
      PAYMENT_TRACE_ID_SYSTEM,
      INSTAMED_PAYMENT_PLAN_SYSTEM,
      CLAIM_ID_SYSTEM,
    ];
    expect(used.filter((u) => !namingSystems().includes(u))).toEqual([]);
  });
});

const cr: ClaimResponse = {
  resourceType: 'ClaimResponse',
  status: 'active',
  type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
  use: 'claim',
  patient: { reference: 'Patient/p1' },
  created: '2026-12-01T10:00:00Z',
  insurer: { reference: 'Organization/o1' },
  outcome: 'complete',
};
const coverage: Coverage = { resourceType: 'Coverage', status: 'active', beneficiary: { reference: 'Patient/p1' }, payor: [{ reference: 'Organization/o1' }] };

describe('the validator and our extensions', () => {
  it('an extension under our base without a definition is an error; another party\'s is not', () => {
    expect(errorsAt({ ...cr, extension: [{ url: `${CANONICAL_BASE}/StructureDefinition/claim-pile`, valueString: '7' }] })).toEqual([
      'ClaimResponse.extension[0]',
    ]);
    expect(errorsAt({ ...cr, extension: [{ url: 'https://example.org/fhir/StructureDefinition/x', valueString: '7' }] })).toEqual([]);
  });

  it('accepts the payer-decision extensions in their context', () => {
    expect(
      errorsAt({
        ...cr,
        extension: [
          { url: CURACEL.pileId, valueString: '77' },
          { url: ADJUDICATION_FINAL, valueBoolean: true },
          { url: CURACEL.reviewOpenedAt, valueDateTime: '2026-12-01T09:00:00Z' },
        ],
      }),
    ).toEqual([]);
    expect(
      errorsAt({
        ...coverage,
        extension: [
          { url: CURACEL.floatingEnrollee, valueBoolean: true },
          { url: CURACEL.enrolleeStatus, valueString: 'active' },
        ],
      }),
    ).toEqual([]);
  });

  it('rejects them out of context or with another value type', () => {
    expect(errorsAt({ ...coverage, extension: [{ url: CURACEL.pileId, valueString: '77' }] })).toEqual(['Coverage.extension[0]']);
    expect(errorsAt({ ...cr, extension: [{ url: CURACEL.itemRef, valueString: 'i-1' }] })).toEqual(['ClaimResponse.extension[0]']);
    expect(errorsAt({ ...cr, extension: [{ url: ADJUDICATION_FINAL, valueString: 'true' }] })).toEqual([
      'ClaimResponse.extension[0].valueString',
    ]);
    expect(errorsAt({ ...coverage, extension: [{ url: CURACEL.floatingEnrollee, valueBoolean: true, valueString: 'x' }] })).toEqual([
      'Coverage.extension[0].value[x]',
    ]);
  });

  it('each of our extensions states its context(s), one value type and its own url', () => {
    for (const sd of own().filter((r): r is StructureDefinition => r.resourceType === 'StructureDefinition' && r.type === 'Extension')) {
      expect(sd.context?.length, sd.url).toBeGreaterThan(0);
      const value = sd.snapshot?.element.find((e) => e.path === 'Extension.value[x]');
      expect(value?.type?.length, sd.url).toBe(1);
      expect(sd.snapshot?.element.find((e) => e.path === 'Extension.url')?.fixedUri).toBe(sd.url);
    }
  });
});
