import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { expect } from 'vitest';
import type { Claim, ClaimResponse, Resource } from '@medplum/fhirtypes';
import { checkBooks } from '../../src/billing/index.ts';
import { FULL_ACCESS } from '../../src/fhir/access.ts';
import { PostgresRepository } from '../../src/fhir/repository.ts';
import type { TestApp } from './app.ts';
import { claim as claimFixture, patient } from './fixtures.ts';

export const LIFECYCLE_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/claim-lifecycle-id';
export const PAID_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/patient-paid-amount';
export const ISSUER_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/patient-payment-issuer';
export const C4BB = 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication';
export const WEBHOOK = '/api/webhooks/patient-payment';

/** A repository of the server's own (every scope) in `tenant`, as billing commands get one. */
export function serverRepo(t: TestApp, tenant = 'default'): PostgresRepository {
  return new PostgresRepository(t.db, { tenantId: tenant, access: FULL_ACCESS, baseUrl: 'http://test/fhir' });
}

/** The tenant's books must reconcile: patientPaidAmount and credit balances equal the ledger. */
export async function expectBooksBalanced(t: TestApp, tenant = 'default'): Promise<void> {
  expect(await checkBooks(serverRepo(t, tenant))).toEqual([]);
}

/** Client helpers for one tenant's token. */
export function client(t: TestApp, token: string) {
  const auth = { type: 'bearer' as const };
  const fhir = {
    async create<T extends Resource>(resource: T): Promise<T & { id: string }> {
      const res = await request(t.app).post(`/fhir/${resource.resourceType}`).auth(token, auth).send(resource);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body;
    },
    async read<T = any>(ref: string): Promise<T> {
      const res = await request(t.app).get(`/fhir/${ref}`).auth(token, auth);
      expect(res.status, `${ref}: ${JSON.stringify(res.body)}`).toBe(200);
      return res.body;
    },
    async search<T = any>(query: string): Promise<T[]> {
      const res = await request(t.app).get(`/fhir/${query}`).auth(token, auth);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return (res.body.entry ?? []).map((e: { resource: T }) => e.resource);
    },
    /** $validate of a stored resource, as read back: the OperationOutcome. */
    async validate(ref: string): Promise<any> {
      const resource = await fhir.read(ref);
      const res = await request(t.app).post(`/fhir/${resource.resourceType}/$validate`).auth(token, auth).send(resource);
      expect(res.status).toBe(200);
      return res.body;
    },
  };

  return {
    token,
    fhir,
    pay: (body: unknown) => request(t.app).post(WEBHOOK).auth(token, auth).send(body as object),
    allocate: (creditId: string, parameters: unknown[]) =>
      request(t.app)
        .post(`/fhir/PatientCredit/${creditId}/$allocate`)
        .auth(token, auth)
        .send({ resourceType: 'Parameters', parameter: parameters }),

    async patient(): Promise<string> {
      return `Patient/${(await fhir.create(patient())).id}`;
    },

    /** A claim with claim-id `billId`; `lifecycle` sets claim-lifecycle-id. */
    async claim(patientRef: string, opts: { billId?: string; lifecycle?: string; created?: string } = {}): Promise<Claim & { id: string; billId: string }> {
      const billId = opts.billId ?? `bill-${randomUUID()}`;
      const c = claimFixture(patientRef, billId, opts.created);
      if (opts.lifecycle) c.extension = [{ url: LIFECYCLE_EXT, valueString: opts.lifecycle }];
      return { ...(await fhir.create(c)), billId };
    },

    /**
     * A ClaimResponse for `claimId`: `total` puts memberliability in ClaimResponse.total; `items`
     * puts one memberliability adjudication per item instead.
     */
    async claimResponse(
      claimId: string,
      opts: { total?: number; items?: number[]; created?: string; status?: ClaimResponse['status']; use?: ClaimResponse['use']; patientRef?: string; currency?: string } = {},
    ): Promise<ClaimResponse & { id: string }> {
      const category = { coding: [{ system: C4BB, code: 'memberliability' }] };
      const other = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/adjudication', code: 'benefit' }] };
      const currency = (opts.currency ?? 'USD') as 'USD';
      const cr: ClaimResponse = {
        resourceType: 'ClaimResponse',
        status: opts.status ?? 'active',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
        use: opts.use ?? 'claim',
        patient: { reference: opts.patientRef ?? 'Patient/unknown' },
        created: opts.created ?? '2024-05-02T10:00:00Z',
        insurer: { display: 'Payer' },
        request: { reference: `Claim/${claimId}` },
        outcome: 'complete',
        ...(opts.items && {
          item: opts.items.map((v, i) => ({
            itemSequence: i + 1,
            adjudication: [
              { category, amount: { value: v, currency } },
              { category: other, amount: { value: 999, currency } },
            ],
          })),
        }),
        ...(opts.total !== undefined && {
          total: [
            { category: other, amount: { value: 500, currency } },
            { category, amount: { value: opts.total, currency } },
          ],
        }),
      };
      return fhir.create(cr);
    },

    /** patient-paid-amount of a claim, as a number (undefined without the extension). */
    async paidOn(claimId: string): Promise<number | undefined> {
      const c = await fhir.read<Claim>(`Claim/${claimId}`);
      return c.extension?.find((e) => e.url === PAID_EXT)?.valueMoney?.value;
    },
  };
}

export type Client = ReturnType<typeof client>;
