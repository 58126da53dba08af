import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import type { Claim, ClaimResponse, Coverage, Organization, Patient } from '@medplum/fhirtypes';
import { runCommand } from '../../src/cli/commands.ts';
import { listEvents } from '../../src/inbound/index.ts';
import type { TestApp } from '../support/app.ts';
import { expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { claimVetted, phpJson, pileDone, platformId, postSigned, posterFor, registerCuracelSource, sign, startCuracel } from '../support/curacel.ts';

/** Curacel claim vetting (shared/seeds/001) through HTTP on the real database. */
let t: TestApp;
let c: Client;
let admin: string;
let url: string;
let secret: string;
beforeAll(async () => {
  ({ t, c, admin, url, secret } = await startCuracel('claims-vetting'));
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const SID = 'https://fhir-billing.org/fhir/sid';
const post = (body: unknown, signature?: string | null) => posterFor(t, url, secret)(body, signature);
const responseOf = async (id: string | number): Promise<ClaimResponse[]> => c.fhir.search<ClaimResponse>(`ClaimResponse?identifier=${SID}/curacel-claim-id|${id}`);
const journal = async () => listEvents(t.db, 'default', 'claims-vetting');
const adjudication = (list: { category?: { coding?: { code?: string }[] }; amount?: { value?: number; currency?: string }; value?: number; reason?: any }[] | undefined, code: string) =>
  list?.find((a) => a.category?.coding?.[0].code === code);

describe('claim.vetted', () => {
  it('an unknown claim is created from the payload with its patient, coverage and provider; one ClaimResponse answers it', async () => {
    const e = claimVetted();
    const res = await post(e);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ status: 'created', claimCreated: true, event: 'claim.vetted' });
    const claim = await c.fhir.read<Claim>(res.body.claim);
    expect(claim).toMatchObject({ use: 'claim', status: 'active', billablePeriod: { start: '2021-09-05T00:00:00.000000Z' } });
    expect(claim.identifier?.[0].value).toBe(e.data.ref);
    expect(claim.diagnosis?.[0].diagnosisCodeableConcept?.coding?.[0]).toEqual({ system: 'http://hl7.org/fhir/sid/icd-10', code: 'A01', display: 'Typhoid fever' });
    expect(claim.item?.map((i) => [i.productOrService.text, i.quantity?.value, i.unitPrice, i.net])).toEqual([
      ['Consultation', 1, { value: 2000, currency: 'NGN' }, { value: 2000, currency: 'NGN' }],
      ['Lab test / widal', 2, { value: 1500.25, currency: 'NGN' }, { value: 3000.5, currency: 'NGN' }],
    ]);
    expect(claim.total).toEqual({ value: 5000.5, currency: 'NGN' });
    const patient = await c.fhir.read<Patient>(claim.patient.reference!);
    expect(patient.name).toEqual([{ family: 'Okafor', given: ['Adaeze'] }]);
    expect(patient.identifier?.map((i) => i.value)).toEqual([e.data.enrollee.id, 'WHMO/2021/0042']);
    const coverage = await c.fhir.read<Coverage>(claim.insurance[0].coverage.reference!);
    expect(coverage).toMatchObject({ subscriberId: 'WHMO/2021/0042', relationship: { text: 'principal' }, beneficiary: claim.patient });
    const provider = await c.fhir.read<Organization>(claim.provider.reference!);
    expect(provider.name).toBe('Lagos Clinic');

    const [cr] = await responseOf(e.data.id);
    expect(`ClaimResponse/${cr.id}`).toBe(res.body.claimResponse);
    expect(cr).toMatchObject({ use: 'claim', outcome: 'complete', disposition: 'PARTIALLY_APPROVED', created: e.data.vetted_at, request: { reference: `Claim/${claim.id}` } });
    expect(adjudication(cr.total, 'submitted')?.amount).toEqual({ value: 5000.5, currency: 'NGN' });
    expect(adjudication(cr.total, 'benefit')?.amount).toEqual({ value: 4500.5, currency: 'NGN' });
    const item = cr.item![1];
    expect(adjudication(item.adjudication, 'eligible')).toMatchObject({ amount: { value: 1250.25 }, value: 2 });
    expect(adjudication(item.adjudication, 'benefit')?.amount?.value).toBe(2500.5);
    expect(cr.processNote).toEqual([{ number: 1, type: 'display', text: 'Tariff is 1250.25' }]);
    expect(item.noteNumber).toEqual([1]);
    expect(cr.extension).toContainEqual({ url: 'https://fhir-billing.org/fhir/StructureDefinition/claim-pile-id', valueString: '77' });
    expect((await c.fhir.validate(`ClaimResponse/${cr.id}`)).issue.filter((i: any) => i.severity === 'error')).toEqual([]);
    expect((await c.fhir.validate(`Claim/${claim.id}`)).issue.filter((i: any) => i.severity === 'error')).toEqual([]);
    // Our extensions, each defined in fhir-profiles/ (the validator refuses one of ours it does not know).
    expect(claim.item?.[0].extension).toEqual([{ url: 'https://fhir-billing.org/fhir/StructureDefinition/claim-item-ref', valueString: 'it-1' }]);
    expect(coverage.extension).toEqual([{ url: 'https://fhir-billing.org/fhir/StructureDefinition/enrollee-status', valueString: 'active' }]);
    expect(cr.adjudication?.[0].reason?.coding?.[0]).toEqual({ system: 'https://fhir-billing.org/fhir/CodeSystem/vetting-decision', code: 'approved' });
    expect((await c.fhir.validate(`Coverage/${coverage.id}`)).issue.filter((i: any) => i.severity === 'error')).toEqual([]);
  });

  it('finds a claim already here by its ref (the tenant\'s claim-id) and leaves it as it was', async () => {
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef);
    const res = await post(claimVetted({ ref: claim.billId }));
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ claim: `Claim/${claim.id}`, claimCreated: false });
    const after = await c.fhir.read<Claim>(`Claim/${claim.id}`);
    expect(after.meta?.versionId).toBe(claim.meta?.versionId);
  });

  it('a null ref creates the claim once; the next event for that platform claim finds it through its response', async () => {
    const id = platformId();
    const first = await post(claimVetted({ id, ref: null, vettedAt: '2022-02-16T10:00:00Z' }));
    const second = await post(claimVetted({ id, ref: null, vettedAt: '2022-02-16T11:00:00Z' }));
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.body).toMatchObject({ status: 'updated', claim: first.body.claim, claimCreated: false });
  });

  it('verifies the raw bytes: PHP-escaped slashes and non-ASCII sign as sent', async () => {
    const e = claimVetted();
    e.data.enrollee.first_name = 'Chidinma Ọ́gọ́';
    const body = phpJson(e);
    expect(body).toContain('\\/');
    const res = await post(body);
    expect(res.status, res.text).toBe(200);
    const [event] = (await journal()).filter((j) => j.dedupeKey === `claim|${e.data.id}`);
    expect(event.rawBody).toBe(body);
    const claim = await c.fhir.read<Claim>(res.body.claim);
    expect((await c.fhir.read<Patient>(claim.patient.reference!)).name?.[0].given).toEqual(['Chidinma Ọ́gọ́']);
  });
});

describe('claim.pile.vetting_done', () => {
  it('mixed items make the outcome partial; rejected items carry benefit 0 and their comments; the response is final', async () => {
    const providerId = platformId();
    const e = pileDone({ providerId });
    const res = await post(e);
    expect(res.status, res.text).toBe(200);
    const [cr] = await responseOf(e.data.id);
    expect(cr).toMatchObject({ outcome: 'partial', disposition: 'partially approved' });
    expect(cr.extension).toContainEqual({ url: 'https://fhir-billing.org/fhir/StructureDefinition/adjudication-final', valueBoolean: true });
    expect(adjudication(cr.item![1].adjudication, 'benefit')).toMatchObject({ amount: { value: 0 }, reason: { coding: [{ code: 'rejected' }] } });
    expect(cr.item![1].noteNumber).toEqual([1, 2]);
    const claim = await c.fhir.read<Claim>(res.body.claim);
    expect(claim.total).toEqual({ value: 5000, currency: 'NGN' });
    const provider = await c.fhir.read<Organization>(claim.provider.reference!);
    expect(provider.identifier?.map((i) => i.value)).toEqual([String(providerId), 'LC-001']);
  });

  it('a pending claim (approval_status null) is queued', async () => {
    const e = pileDone({ itemApproval: [null, null] });
    (e.data as any).approval_status = null;
    expect((await post(e)).status).toBe(200);
    expect((await responseOf(e.data.id))[0]).toMatchObject({ outcome: 'queued', disposition: 'pending' });
  });

  it('the pile event after claim.vetted updates the one response; a later claim.vetted at the same time is out of date', async () => {
    const id = platformId();
    const vetted = claimVetted({ id });
    const pile = pileDone({ id, ref: vetted.data.ref, vettedAt: vetted.data.vetted_at });
    expect((await post(vetted)).body.status).toBe('created');
    expect((await post(pile)).body.status).toBe('updated');
    const stale = await post(claimVetted({ id, ref: vetted.data.ref }));
    expect(stale.status).toBe(200);
    expect(stale.body.status).toBe('out-of-date');
    const older = await post(claimVetted({ id, ref: vetted.data.ref, vettedAt: '2022-01-01T00:00:00Z' }));
    expect(older.body.status).toBe('out-of-date');
    const responses = await responseOf(id);
    expect(responses).toHaveLength(1);
    expect(responses[0]).toMatchObject({ outcome: 'partial', meta: { versionId: '2' } });
    expect((await journal()).filter((j) => j.dedupeKey === `claim|${id}`).map((j) => j.status)).toEqual(['processed', 'processed', 'processed', 'processed']);
  });
});

describe('refusals and duplicates', () => {
  it('the same event again answers 200 with the first answer and changes nothing', async () => {
    const e = claimVetted();
    const first = await post(e);
    const again = await post(e);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const [cr] = await responseOf(e.data.id);
    expect(cr.meta?.versionId).toBe('1');
    expect((await journal()).filter((j) => j.dedupeKey === `claim|${e.data.id}`).map((j) => j.status)).toEqual(['processed', 'duplicate']);
  });

  it('a bad or missing signature is 401, journalled, and changes nothing', async () => {
    const e = claimVetted();
    const body = JSON.stringify(e);
    const forged = await post(body, sign('another-secret-entirely', body));
    expect(forged.status).toBe(401);
    expect(forged.body.message).toMatch(/does not match/);
    expect((await post(body, 'zz')).status).toBe(401);
    const unsigned = await post(body, null);
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.message).toMatch(/x-curacel-signature header is required/);
    // A re-serialisation is not what was signed.
    expect((await post(`${body} `, sign(secret, body))).status).toBe(401);
    expect(await responseOf(e.data.id)).toEqual([]);
    const refused = (await journal()).filter((j) => j.rawBody?.startsWith(body));
    expect(refused.map((j) => [j.status, j.eventType, j.response?.status])).toEqual(Array(4).fill(['refused', 'claims-vetting.unauthenticated', 401]));
  });

  it('unsigned posts are taken only from a source set to accept them', async () => {
    const open = await registerCuracelSource(t, admin, 'claims-vetting', { acceptUnsigned: true, currency: 'GHS' });
    const e = claimVetted();
    const res = await request(t.app).post(open.url).set('Content-Type', 'application/json').send(JSON.stringify(e));
    expect(res.status, res.text).toBe(200);
    expect((await responseOf(e.data.id))[0].total?.[0].amount?.currency).toBe('GHS');
    const bad = await request(t.app).post(open.url).set('Content-Type', 'application/json').set('x-curacel-signature', '0'.repeat(64)).send(JSON.stringify(claimVetted()));
    expect(bad.status).toBe(401);
  });

  it('malformed bodies are 400 naming the field, and change nothing', async () => {
    const e = claimVetted();
    const cases: [unknown, RegExp][] = [
      ['{"event":', /not JSON/],
      [{ ...e, event: 'claim.paid' }, /^event: event must be one of/],
      [{ ...e, data: { ...e.data, approved_amount: '12,5' } }, /^data\.approved_amount: a non-negative decimal number/],
      [{ ...e, data: { ...e.data, approved_amount: -5 } }, /^data\.approved_amount: a non-negative decimal/],
      [{ ...e, data: { ...e.data, items: [{ ...e.data.items[0], qty_billed: 'two' }] } }, /^data\.items\.0\.qty_billed/],
      [{ ...e, data: { ...e.data, vetted_at: 'yesterday' } }, /^data\.vetted_at: an ISO 8601/],
      [{ ...e, data: { ...e.data, enrollee: undefined } }, /^data\.enrollee/],
      [{ ...e, data: { ...e.data, approval_status: 2 } }, /^data\.approval_status/],
      [[], /^body|^event/],
    ];
    for (const [body, problem] of cases) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.message).toMatch(problem);
    }
    const deep = `{"event":"claim.vetted","data":{"items":[{"comments":[${'['.repeat(5000)}${']'.repeat(5000)}]}]}}`;
    expect((await post(deep)).status).toBe(400);
    const nul = await post({ ...e, data: { ...e.data, enrollee: { ...e.data.enrollee, first_name: 'A\u0000B' } } });
    expect([nul.status, nul.body.field]).toEqual([400, 'data.enrollee.first_name']);
    const field = await post({ ...e, data: { ...e.data, pile_id: 'x' } });
    expect(field.body.field).toBe('data.pile_id');
    expect(await responseOf(e.data.id)).toEqual([]);
  });

  it('an unknown or other-kind source is 404', async () => {
    const res = await postSigned(t, '/api/webhooks/claims-vetting/src_nope', secret, '{}');
    expect(res.status).toBe(404);
    const pa = await registerCuracelSource(t, admin, 'pre-authorization');
    expect((await postSigned(t, `/api/webhooks/claims-vetting/${pa.id}`, secret, '{}')).status).toBe(404);
  });
});

describe('sources, tenants and concurrency', () => {
  it('the CLI registers a source with the secret the sender issued, its currency and unsigned posts allowed', async () => {
    const given = 'secret-from-the-curacel-dashboard';
    const run = await runCommand(t.db, t.auth, ['sources', 'create', '--tenant', 'default', '--kind', 'claims-vetting', '--name', 'CLI vetting', '--signing-secret', given, '--currency', 'KES', '--accept-unsigned']);
    expect(run.code, run.stderr).toBe(0);
    const source = JSON.parse(run.stdout);
    expect(source).toMatchObject({ kind: 'claims-vetting', currency: 'KES', acceptUnsigned: true, signingSecretSet: true });
    expect(source.credentials).toBeUndefined(); // a secret we were given is not echoed
    const e = claimVetted();
    expect((await postSigned(t, source.url, given, JSON.stringify(e))).status).toBe(200);
    expect((await responseOf(e.data.id))[0].total?.[0].amount?.currency).toBe('KES');
    const rotated = await request(t.app).post(`/admin/webhook-sources/${source.id}/rotate-credentials`).auth(admin, { type: 'bearer' });
    expect((await postSigned(t, source.url, given, JSON.stringify(claimVetted()))).status).toBe(401);
    expect((await postSigned(t, source.url, rotated.body.credentials.signingSecret, JSON.stringify(claimVetted()))).status).toBe(200);
  });

  it('a source of another tenant writes only there: a ref of this tenant\'s claim creates its own claim', async () => {
    await t.token('system/*.cruds', 'other');
    const other = await registerCuracelSource(t, admin, 'claims-vetting', { tenant: 'other' });
    const patientRef = await c.patient();
    const mine = await c.claim(patientRef);
    const res = await postSigned(t, other.url, other.credentials!.signingSecret, JSON.stringify(claimVetted({ ref: mine.billId })));
    expect(res.status, res.text).toBe(200);
    expect(res.body.claimCreated).toBe(true);
    expect(res.body.claim).not.toBe(`Claim/${mine.id}`);
    expect((await request(t.app).get(`/fhir/${res.body.claim}`).auth(await t.token(), { type: 'bearer' })).status).toBe(404);
    expect(await c.fhir.search(`ClaimResponse?request=Claim/${mine.id}`)).toEqual([]);
    await expectBooksBalanced(t, 'other');
  });

  it('claims of one new enrollee and provider arriving at once make one Patient and one Organization', async () => {
    const enrolleeId = platformId();
    const events = Array.from({ length: 6 }, () => claimVetted({ enrolleeId }));
    const providerId = String(platformId());
    for (const e of events) e.data.provider.id = providerId;
    const answers = await Promise.all(events.map((e) => post(e)));
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(200));
    expect(await c.fhir.search(`Patient?identifier=${SID}/curacel-enrollee-id|${enrolleeId}`)).toHaveLength(1);
    expect(await c.fhir.search(`Organization?identifier=${SID}/curacel-provider-id|${providerId}`)).toHaveLength(1);
    expect(await c.fhir.search(`Coverage?identifier=${SID}/curacel-enrollee-id|${enrolleeId}`)).toHaveLength(1);
    // and the same event posted twice at once is applied once
    const e = claimVetted();
    const twice = await Promise.all([post(e), post(e)]);
    expect(twice.map((a) => a.status)).toEqual([200, 200]);
    expect(await responseOf(e.data.id)).toHaveLength(1);
    expect((await journal()).filter((j) => j.dedupeKey === `claim|${e.data.id}`).map((j) => j.status).sort()).toEqual(['duplicate', 'processed']);
  });
});
