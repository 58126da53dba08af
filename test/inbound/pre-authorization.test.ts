import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import type { Claim, ClaimResponse, Coverage, Organization, Patient } from '@medplum/fhirtypes';
import { listEvents } from '../../src/inbound/index.ts';
import type { TestApp } from '../support/app.ts';
import { expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { paApproved, paDeclined, platformId, posterFor, registerCuracelSource, sign, startCuracel } from '../support/curacel.ts';

/** Curacel pre-authorization decisions (shared/seeds/003) through HTTP on the real database. */
let t: TestApp;
let c: Client;
let admin: string;
let url: string;
let secret: string;
beforeAll(async () => {
  ({ t, c, admin, url, secret } = await startCuracel('pre-authorization'));
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewAction';
const post = (body: unknown, signature?: string | null) => posterFor(t, url, secret)(body, signature);
const decisionOf = async (id: string): Promise<ClaimResponse[]> =>
  c.fhir.search<ClaimResponse>(`ClaimResponse?identifier=https://fhir-billing.org/fhir/sid/curacel-pa-id-from-insurer|${id}`);
const reviewAction = (cr: ClaimResponse) => {
  const ext = cr.adjudication?.[0].extension?.find((e) => e.url === PAS);
  return {
    code: ext?.extension?.find((e) => e.url === 'code')?.valueCodeableConcept?.coding?.[0].code,
    reason: ext?.extension?.find((e) => e.url === 'reasonCode')?.valueCodeableConcept?.text,
  };
};
const total = (cr: ClaimResponse, code: string) => cr.total?.find((x) => x.category.coding?.[0].code === code)?.amount;

describe('pre-authorization decisions', () => {
  it('Approved (seed example): a preauthorization Claim created from the decision, a PAS-style ClaimResponse with preAuthRef and A2', async () => {
    const d = paApproved();
    const res = await post(d);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ status: 'created', claimCreated: true, event: 'pa.approved' });
    const [cr] = await decisionOf(d.id_from_insurer);
    expect(cr).toMatchObject({ use: 'preauthorization', status: 'active', outcome: 'complete', preAuthRef: 'PA123456', disposition: 'Approved', created: d.closed_at });
    expect(reviewAction(cr)).toEqual({ code: 'A2', reason: undefined }); // 4500 of 5000
    expect(cr.adjudication?.[0].category.coding?.[0].code).toBe('submitted');
    expect(total(cr, 'submitted')).toEqual({ value: 5000, currency: 'NGN' });
    expect(total(cr, 'benefit')).toEqual({ value: 4500, currency: 'NGN' });
    // Ours, defined in fhir-profiles/ ($validate below refuses an extension of ours it does not know).
    expect(cr.extension).toEqual(
      expect.arrayContaining([
        { url: 'https://fhir-billing.org/fhir/StructureDefinition/review-opened-at', valueDateTime: d.opened_at },
        { url: 'https://fhir-billing.org/fhir/StructureDefinition/adjudication-final', valueBoolean: true },
      ]),
    );
    const insurer = await c.fhir.read<Organization>(cr.insurer.reference!);
    expect(insurer).toMatchObject({ name: 'Wayne HMO', identifier: [{ value: 'BruceW' }] });

    const claim = await c.fhir.read<Claim>(cr.request!.reference!);
    expect(claim).toMatchObject({ use: 'preauthorization', created: d.created_at, identifier: [{ value: d.ref }], insurer: cr.insurer });
    expect(claim.diagnosis?.map((x) => x.diagnosisCodeableConcept?.coding?.[0].code)).toEqual(['A01', 'B02']);
    expect(claim.item?.map((i) => i.productOrService.text)).toEqual(['Consultation', 'Lab Test']);
    const patient = await c.fhir.read<Patient>(claim.patient.reference!);
    expect(patient.name).toEqual([{ text: 'John Doe' }]);
    const coverage = await c.fhir.read<Coverage>(claim.insurance[0].coverage.reference!);
    expect(coverage).toMatchObject({ subscriberId: 'INS123456', payor: [cr.insurer] });
    for (const ref of [`ClaimResponse/${cr.id}`, `Claim/${claim.id}`]) {
      expect((await c.fhir.validate(ref)).issue.filter((i: any) => i.severity === 'error')).toEqual([]);
    }
  });

  it('approved in full is A1; status in any case', async () => {
    const d = { ...paApproved(), status: 'APPROVED', pa_approved_amount: '5000.00' };
    expect((await post(d)).status).toBe(200);
    expect(reviewAction((await decisionOf(d.id_from_insurer))[0]).code).toBe('A1');
  });

  it('Declined (seed example): A3 with the reject reason, no preAuthRef', async () => {
    const d = paDeclined();
    expect((await post(d)).status).toBe(200);
    const [cr] = await decisionOf(d.id_from_insurer);
    expect(reviewAction(cr)).toEqual({ code: 'A3', reason: 'Insufficient documentation provided' });
    expect(cr.preAuthRef).toBeUndefined();
    expect(cr.processNote?.[0].text).toBe('Insufficient documentation provided');
    expect(total(cr, 'benefit')?.value).toBe(0);
  });

  it('finds the preauthorization Claim by ref; a later decision updates the response; an older one changes nothing', async () => {
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef);
    const id = String(platformId());
    const declined = await post({ ...paDeclined(claim.billId, id), closed_at: '2024-07-29T14:00:00Z' });
    expect(declined.body).toMatchObject({ claim: `Claim/${claim.id}`, claimCreated: false, status: 'created' });
    const approved = await post({ ...paApproved(claim.billId, id), closed_at: '2024-07-30T09:00:00Z' });
    expect(approved.body.status).toBe('updated');
    const older = await post({ ...paDeclined(claim.billId, id), closed_at: '2024-07-28T09:00:00Z' });
    expect(older.status).toBe(200);
    expect(older.body.status).toBe('out-of-date');
    const [cr] = await decisionOf(id);
    expect(reviewAction(cr).code).toBe('A2');
    expect(cr.meta?.versionId).toBe('2');
  });

  it('a floating enrollee becomes a Patient with name and gender, and a Coverage marked floating', async () => {
    const { enrollee_insurance_no: _n, enrollee_full_name: _f, ...rest } = paApproved();
    const d = { ...rest, floating_enrollee: { first_name: 'Tunde', last_name: 'Bakare', sex: 'M' } };
    const res = await post(d);
    expect(res.status, res.text).toBe(200);
    const claim = await c.fhir.read<Claim>(res.body.claim);
    expect(await c.fhir.read<Patient>(claim.patient.reference!)).toMatchObject({ name: [{ family: 'Bakare', given: ['Tunde'] }], gender: 'male' });
    const coverage = await c.fhir.read<Coverage>(claim.insurance[0].coverage.reference!);
    expect(coverage.extension).toEqual([{ url: 'https://fhir-billing.org/fhir/StructureDefinition/floating-enrollee', valueBoolean: true }]);
    expect((await c.fhir.validate(`Coverage/${coverage.id}`)).issue.filter((i: any) => i.severity === 'error')).toEqual([]);
  });

  it('duplicates answer 200 and change nothing; bad and missing signatures are 401; malformed is 400 naming the field', async () => {
    const d = paApproved();
    const first = await post(d);
    expect((await post(d)).body).toEqual(first.body);
    expect((await decisionOf(d.id_from_insurer))[0].meta?.versionId).toBe('1');
    const other = paApproved();
    const body = JSON.stringify(other);
    expect((await post(body, sign('not-the-secret-at-all', body))).status).toBe(401);
    expect((await post(body, null)).status).toBe(401);
    expect(await decisionOf(other.id_from_insurer)).toEqual([]);
    for (const [bad, field] of [
      [{ ...other, status: 'Pending' }, 'status'],
      [{ ...other, pa_total_amount: 'lots' }, 'pa_total_amount'],
      [{ ...other, hmo: { name: 'X' } }, 'hmo.code'],
      [{ ...other, diagnoses: ['A01'] }, 'diagnoses'],
      [{ ...other, closed_at: '29/07/2024' }, 'closed_at'],
    ] as const) {
      const res = await post(bad);
      expect(res.status).toBe(400);
      expect(res.body.field).toBe(field);
    }
    const journal = (await listEvents(t.db, 'default', 'pre-authorization')).map((j) => j.status);
    expect(journal.filter((s) => s === 'duplicate')).toHaveLength(1);
    expect(journal.filter((s) => s === 'refused').length).toBeGreaterThanOrEqual(7);
  });

  it('unsigned posts only where the source accepts them', async () => {
    const open = await registerCuracelSource(t, admin, 'pre-authorization', { acceptUnsigned: true });
    const d = paApproved();
    const res = await request(t.app).post(open.url).set('Content-Type', 'application/json').send(JSON.stringify(d));
    expect(res.status, res.text).toBe(200);
    expect((await post(paApproved(), null)).status).toBe(401);
  });
});
