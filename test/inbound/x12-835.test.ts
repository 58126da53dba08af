import { readFileSync } from 'node:fs';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Claim, ClaimResponse, Organization, PaymentReconciliation } from '@medplum/fhirtypes';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { checkBooks } from '../../src/billing/index.ts';
import { C4BB, client, expectBooksBalanced, serverRepo } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';

/** Payer remittances (X12 835) through POST /api/remittances, on a real database, one fixture each. */
let t: TestApp;
let c: Client;
let token: string;
beforeAll(async () => {
  t = await startTestApp();
  token = await t.token('system/*.cruds');
  c = client(t, token);
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/x12-835/${name}`, import.meta.url), 'latin1');
const post = (body: string, auth = token) =>
  request(t.app).post('/api/remittances').auth(auth, { type: 'bearer' }).set('Content-Type', 'application/edi-x12').send(body);

const PAYER_CLAIM = 'https://fhir-billing.org/fhir/identifier/payer-claim-control-number';
const money = (v: number) => ({ value: v, currency: 'USD' as const });
const cat = (system: string, code: string) => ({ coding: [{ system, code }] });
const ADJ = 'http://terminology.hl7.org/CodeSystem/adjudication';
const GROUP = 'https://x12.org/codes/claim-adjustment-group-codes';
const CARC = 'https://x12.org/codes/claim-adjustment-reason-codes';
const RARC = 'https://x12.org/codes/remittance-advice-remark-codes';

async function claimFor(billId: string) {
  const patientRef = await c.patient();
  return { patientRef, claim: await c.claim(patientRef, { billId }) };
}

async function responsesOf(claimId: string): Promise<ClaimResponse[]> {
  return c.fhir.search<ClaimResponse>(`ClaimResponse?request=Claim/${claimId}&_sort=_lastUpdated`);
}

async function reconciliation(trace: string): Promise<PaymentReconciliation> {
  const found = await c.fhir.search<PaymentReconciliation>(`PaymentReconciliation?identifier=${trace}`);
  expect(found).toHaveLength(1);
  return found[0];
}

const memberLiability = (cr: ClaimResponse) => cr.total?.find((x) => x.category.coding?.[0]?.system === C4BB)?.amount?.value;

describe('POST /api/remittances', () => {
  it('single claim: a ClaimResponse with totals, CAS as adjudications, the SVC line; one PaymentReconciliation', async () => {
    const { claim, patientRef } = await claimFor('PCN-SINGLE-1');
    const res = await post(fixture('single-claim.835'));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.remittances).toEqual([expect.objectContaining({ traceNumber: 'EFT-SINGLE-1', status: 'created', paymentAmount: '150.00', claims: 1, applied: 1, waiting: 0 })]);

    const [cr] = await responsesOf(claim.id);
    expect(cr).toMatchObject({
      status: 'active', use: 'claim', outcome: 'complete', patient: { reference: patientRef },
      identifier: [{ system: PAYER_CLAIM, value: 'PCC-SINGLE-1' }],
      disposition: 'Processed as primary (CLP02 1)',
      total: [
        { category: cat(ADJ, 'submitted'), amount: money(200) },
        { category: cat(ADJ, 'benefit'), amount: money(150) },
        { category: cat(C4BB, 'memberliability'), amount: money(30) },
      ],
      adjudication: [
        { category: cat(GROUP, 'CO'), reason: cat(CARC, '45'), amount: money(20) },
        { category: cat(GROUP, 'PR'), reason: cat(CARC, '3'), amount: money(30) },
      ],
    });
    expect(cr.item).toEqual([
      {
        itemSequence: 1,
        adjudication: [
          { category: cat(ADJ, 'submitted'), reason: { text: 'SVC01 HC:99213' }, amount: money(200), value: 1 },
          { category: cat(ADJ, 'benefit'), amount: money(150) },
          { category: cat(GROUP, 'CO'), reason: cat(CARC, '45'), amount: money(20) },
          { category: cat(GROUP, 'PR'), reason: cat(CARC, '3'), amount: money(30) },
        ],
      },
    ]);
    const insurer = await c.fhir.read<Organization>(cr.insurer.reference!);
    expect(insurer).toMatchObject({ name: 'ACME HEALTH PLAN', identifier: [{ value: 'ACME01' }] });

    const pr = await reconciliation('EFT-SINGLE-1');
    expect(pr).toMatchObject({
      status: 'active', outcome: 'complete', paymentDate: '2024-05-10', paymentAmount: money(150),
      paymentIdentifier: { value: 'EFT-SINGLE-1' }, paymentIssuer: { reference: cr.insurer.reference },
      detail: [{ type: { coding: [{ code: 'payment' }] }, request: { reference: `Claim/${claim.id}` }, response: { reference: `ClaimResponse/${cr.id}` }, amount: money(150), identifier: { value: 'PCN-SINGLE-1' } }],
    });
    const payee = await c.fhir.read<Organization>(pr.requestor!.reference!);
    expect(payee.identifier).toEqual([{ system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' }]);
    expect((await c.fhir.validate(`ClaimResponse/${cr.id}`)).issue.filter((i: { severity: string }) => i.severity === 'error')).toEqual([]);
    expect((await c.fhir.validate(`PaymentReconciliation/${pr.id}`)).issue.filter((i: { severity: string }) => i.severity === 'error')).toEqual([]);
  });

  it('the same file again changes nothing (idempotent by payer trace); the same trace with other content is refused', async () => {
    await claimFor('PCN-MANY-1');
    await claimFor('PCN-MANY-2');
    const three = await claimFor('PCN-MANY-3');
    const first = await post(fixture('many-claims.835'));
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body.remittances[0]).toMatchObject({ claims: 3, applied: 3 });
    expect((await reconciliation('EFT-MANY-1')).detail).toHaveLength(3);
    const again = await post(fixture('many-claims.835'));
    expect(again.status).toBe(200);
    expect(again.body.remittances[0]).toMatchObject({ status: 'unchanged', paymentReconciliationId: first.body.remittances[0].paymentReconciliationId });
    expect(await responsesOf(three.claim.id)).toHaveLength(1);
    const changed = fixture('many-claims.835').replace('DTM*405*20240509', 'DTM*405*20240510');
    const conflict = await post(changed);
    expect(conflict.status).toBe(409);
    expect(conflict.body.error).toMatch(/EFT-MANY-1.*imported before with other content/);
    const [cr3] = await responsesOf(three.claim.id);
    expect(cr3).toMatchObject({ disposition: 'Processed as secondary (CLP02 2)', adjudication: [{ category: cat(GROUP, 'OA'), reason: cat(CARC, '23') }] });
  });

  it('denial: outcome complete, nothing paid, CO-50 and the RARC remarks (MOA, LQ) kept', async () => {
    const { claim } = await claimFor('PCN-DENIAL-1');
    expect((await post(fixture('denial.835'))).status).toBe(201);
    const [cr] = await responsesOf(claim.id);
    expect(cr.disposition).toBe('Denied (CLP02 4)');
    expect(cr.total?.map((x) => x.amount.value)).toEqual([500, 0, 0]);
    expect(cr.adjudication).toEqual([
      { category: cat(GROUP, 'CO'), reason: cat(CARC, '50'), amount: money(500) },
      { category: { text: 'remark' }, reason: cat(RARC, 'N130') },
      { category: { text: 'remark' }, reason: cat(RARC, 'M76') },
    ]);
    expect(cr.item?.[0].adjudication.at(-1)).toEqual({ category: { text: 'remark' }, reason: cat(RARC, 'N130') });
    expect((await reconciliation('EFT-DENIAL-1')).paymentAmount).toEqual(money(0));
  });

  it('partial pay with PR deductible and coinsurance: CLP05 is what a Cair payment applies against; the rest becomes PatientCredit', async () => {
    const { claim } = await claimFor('PCN-PARTIAL-1');
    expect((await post(fixture('partial-pay.835'))).status).toBe(201);
    const [cr] = await responsesOf(claim.id);
    expect(memberLiability(cr)).toBe(250);
    expect(cr.adjudication?.slice(0, 2)).toEqual([
      { category: cat(GROUP, 'PR'), reason: cat(CARC, '1'), amount: money(200) },
      { category: cat(GROUP, 'PR'), reason: cat(CARC, '2'), amount: money(50) },
    ]);
    expect(cr.item?.map((i) => i.itemSequence)).toEqual([1, 2]);
    const paid = await c.pay({ billId: 'PCN-PARTIAL-1', paymentAmount: 300, paymentTraceId: 'pi_partial_1' });
    expect(paid.status, JSON.stringify(paid.body)).toBe(200);
    expect(paid.body.data).toMatchObject({ amountSetOnClaim: 250, excessAmount: 50 });
    expect(await c.paidOn(claim.id)).toBe(250);
  });

  it('a patient who paid before the remittance: the 835 responsibility takes what it owes, the excess stays PatientCredit', async () => {
    const { claim, patientRef } = await claimFor('PCN-SINGLE-EARLY');
    const paid = await c.pay({ billId: 'PCN-SINGLE-EARLY', paymentAmount: 100, paymentTraceId: 'pi_early_1' });
    expect(paid.body.data).toMatchObject({ amountSetOnClaim: 0, excessAmount: 100 });
    await c.claimResponse(claim.id, { total: 80, patientRef });
    expect(await c.paidOn(claim.id)).toBe(80);
    const file = fixture('single-claim.835').replaceAll('PCN-SINGLE-1', 'PCN-SINGLE-EARLY').replaceAll('EFT-SINGLE-1', 'EFT-SINGLE-EARLY');
    expect((await post(file)).status).toBe(201);
    // The payer says 30: the 50 paid beyond it goes back to the patient's credit.
    expect(await c.paidOn(claim.id)).toBe(30);
    const [credit] = await c.fhir.search<any>(`PatientCredit?patient=${patientRef}`);
    expect(credit).toMatchObject({ amount: money(100), balance: money(70), status: 'partially-allocated' });
  });

  it('reversal and correction (CLP02 22): the earlier response is cancelled, the correction sets the new responsibility', async () => {
    const { claim, patientRef } = await claimFor('PCN-REVERSE-1');
    expect((await post(fixture('original.835'))).status).toBe(201);
    const paid = await c.pay({ billId: 'PCN-REVERSE-1', paymentAmount: 100, paymentTraceId: 'pi_reverse_1' });
    expect(paid.body.data).toMatchObject({ amountSetOnClaim: 100 });
    const res = await post(fixture('reversal-correction.835'));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const responses = await responsesOf(claim.id);
    expect(responses.map((r) => [r.identifier?.[0].value, r.status, memberLiability(r)])).toEqual([
      ['PCC-REVERSE-1', 'cancelled', 100],
      ['PCC-REVERSE-2', 'active', 60],
    ]);
    expect(responses[0].processNote?.[0].text).toMatch(/Reversed by the payer/);
    // 100 was paid against 100. The reversal gives it all back to the patient as credit; the
    // correction (60) then takes 60 of that credit: 40 stays with the patient.
    expect(await c.paidOn(claim.id)).toBe(60);
    const [credit] = await c.fhir.search<any>(`PatientCredit?patient=${patientRef}`);
    expect(credit).toMatchObject({ amount: money(100), balance: money(40), status: 'partially-allocated' });
    expect(credit.allocation).toEqual([expect.objectContaining({ claim: { reference: `Claim/${claim.id}` }, amount: money(60) })]);
    const pr = await reconciliation('CHK-CORR-1');
    expect(pr.paymentAmount).toEqual(money(40));
    expect(pr.detail?.map((d) => d.amount?.value)).toEqual([-200, 240]);
    expect(pr.detail?.[0].response).toEqual({ reference: `ClaimResponse/${responses[0].id}` });
  });

  it('PLB provider adjustments are adjustment details; the details sum to the payment', async () => {
    await claimFor('PCN-PLB-1');
    expect((await post(fixture('plb.835'))).status).toBe(201);
    const pr = await reconciliation('EFT-PLB-1');
    expect(pr.paymentAmount).toEqual(money(280.2));
    expect(pr.detail?.map((d) => [d.type.coding?.[0].code, d.amount?.value])).toEqual([['payment', 300], ['adjustment', -25], ['adjustment', 5.2]]);
    expect(pr.detail?.[1].type.text).toBe('PLB WO OVERPAY-77 (provider 1234567893)');
  });

  it('unknown claim: the claim payment waits, and applies when its Claim is written', async () => {
    const res = await post(fixture('unknown-claim.835'));
    expect(res.status).toBe(201);
    expect(res.body.remittances[0]).toMatchObject({ applied: 0, waiting: 1 });
    expect((await reconciliation('EFT-UNKNOWN-1')).detail?.[0]).not.toHaveProperty('request');
    const listed = await request(t.app).get('/admin/unmatched-payments?tenant=default').auth(await t.token('admin'), { type: 'bearer' });
    expect(listed.body.waitingClaimPayments).toEqual([
      expect.objectContaining({ tenant: 'default', trace: ['1512345678', 'EFT-UNKNOWN-1'], seq: 1, billId: 'PCN-LATER-1', payerClaimId: 'PCC-LATER-1', statusCode: '1', paid: '200.00' }),
    ]);
    const { claim } = await claimFor('PCN-LATER-1');
    const [cr] = await responsesOf(claim.id);
    expect(memberLiability(cr)).toBe(50);
    const pr = await reconciliation('EFT-UNKNOWN-1');
    expect(pr.detail?.[0]).toMatchObject({ request: { reference: `Claim/${claim.id}` }, response: { reference: `ClaimResponse/${cr.id}` } });
    const after = await request(t.app).get('/admin/unmatched-payments?tenant=default').auth(await t.token('admin'), { type: 'bearer' });
    expect(after.body.waitingClaimPayments.map((w: { billId: string }) => w.billId)).not.toContain('PCN-LATER-1');
    expect((await c.pay({ billId: 'PCN-LATER-1', paymentAmount: 50 })).body.data).toMatchObject({ amountSetOnClaim: 50 });
  });

  it('a waiting claim payment that arrives on a lifecycle holding credit applies once, and takes the credit', async () => {
    const { claim: first, patientRef } = await claimFor('PCN-FIRST-1');
    const paid = await c.pay({ billId: 'PCN-FIRST-1', paymentAmount: 100, paymentTraceId: 'pi_first_1' });
    expect(paid.body.data).toMatchObject({ amountSetOnClaim: 0, excessAmount: 100 });
    const file = fixture('unknown-claim.835').replaceAll('PCN-LATER-1', 'PCN-SECOND-1').replaceAll('EFT-UNKNOWN-1', 'EFT-SECOND-1');
    expect((await post(file)).body.remittances[0]).toMatchObject({ waiting: 1 });
    const second = await c.claim(patientRef, { billId: 'PCN-SECOND-1', lifecycle: first.id });
    expect(await responsesOf(second.id)).toHaveLength(1);
    expect(await c.paidOn(second.id)).toBe(50);
    expect(await c.paidOn(first.id)).toBe(50);
  });
});

describe('checkBooks sees remittances', () => {
  it('a PaymentReconciliation changed behind billing\'s back is reported', async () => {
    const tenant = 'books-835';
    const other = client(t, await t.token('system/*.cruds', tenant));
    const patientRef = await other.patient();
    await other.claim(patientRef, { billId: 'PCN-PLB-1' });
    expect((await post(fixture('plb.835'), other.token)).status).toBe(201);
    const repo = serverRepo(t, tenant);
    expect(await checkBooks(repo)).toEqual([]);
    const [pr] = await other.fhir.search<PaymentReconciliation>('PaymentReconciliation?identifier=EFT-PLB-1');
    await repo.updateResource<PaymentReconciliation>({ ...pr, detail: pr.detail!.map((d, i) => (i === 0 ? { ...d, amount: money(299) } : d)) });
    expect(await checkBooks(repo)).toEqual([
      expect.stringMatching(/^sum of the details of PaymentReconciliation\/\S+ is 279.20, the ledger says 280.20$/),
      expect.stringMatching(/^claim payment 1 \(PCN-PLB-1\) of remittance \S+ on PaymentReconciliation\/\S+ is 299.00, the ledger says 300.00$/),
    ]);
  });
});

describe('refused files write nothing', () => {
  const cases: [string, (f: string) => string, number, RegExp][] = [
    ['SE count', (f) => f.replace('SE*19*0001', 'SE*18*0001'), 400, /^SE segment 21: SE01 says "18" segments \(ST through SE\); there are 19$/],
    ['SE control number', (f) => f.replace('SE*19*0001', 'SE*19*0002'), 400, /SE segment 21: SE02 control number 0002 does not match ST02 0001/],
    ['GE count', (f) => f.replace('GE*1*107', 'GE*2*107'), 400, /GE segment 22: GE01 says "2" transaction sets/],
    ['IEA control number', (f) => f.replace('IEA*1*000000107', 'IEA*1*000000999'), 400, /IEA segment 23: IEA02 control number 000000999 does not match ISA13 000000107/],
    ['missing IEA', (f) => f.replace('IEA*1*000000107~\n', ''), 400, /IEA is missing/],
    ['ISA width', (f) => f.replace('ACMEHEALTHPLAN ', 'ACMEHEALTHPLAN'), 400, /^ISA segment 1:/],
    ['a bad amount', (f) => f.replace('CLP*PCN-PLB-1*1*400*300', 'CLP*PCN-PLB-1*1*400*3x0'), 400, /CLP segment 16: CLP04 \(payment amount\) must be a decimal amount/],
    ['balance', (f) => f.replace('BPR*I*280.20', 'BPR*I*281.20'), 422, /BPR02 281.20 but the claims paid 300.00 less provider adjustments 19.80 = 280.20 \(difference 1.00\)/],
    ['not an 835', () => 'hello', 400, /ISA/],
    ['empty', () => '', 400, /empty/],
  ];
  let refused: (Claim & { id: string }) | undefined;
  it.each(cases)('%s', async (_name, edit, status, message) => {
    const claim = refused ?? (refused = (await claimFor('PCN-REFUSED-1')).claim);
    const file = edit(fixture('plb.835')).replaceAll('PCN-PLB-1', 'PCN-REFUSED-1').replaceAll('EFT-PLB-1', 'EFT-REFUSED-1');
    const res = await post(file);
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    expect(res.body.error).toMatch(message);
    expect(await responsesOf(claim.id)).toEqual([]);
    expect(await c.fhir.search('PaymentReconciliation?identifier=EFT-REFUSED-1')).toEqual([]);
    expect(await c.fhir.search('Organization?identifier=ACME01')).toHaveLength(1);
  });

  it('a cut or a lost segment anywhere is a 4xx naming what is wrong, never a 500, and writes nothing', async () => {
    const fuzz = client(t, await t.token('system/*.cruds', 'fuzz-835'));
    const patientRef = await fuzz.patient();
    await fuzz.claim(patientRef, { billId: 'PCN-MANY-1' });
    const whole = fixture('many-claims.835');
    const segments = whole.split('~\n');
    let seed = 42;
    const next = (n: number): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n;
    for (let i = 0; i < 30; i++) {
      const cut = next(i % 2 === 0 ? whole.length - 20 : segments.length - 1);
      const body = i % 2 === 0 ? whole.slice(0, cut) : segments.filter((_, k) => k !== cut).join('~\n');
      const res = await post(body, fuzz.token);
      expect([400, 422], `case ${i} (${cut}): ${res.status} ${JSON.stringify(res.body)}`).toContain(res.status);
      expect(res.body.error).toEqual(expect.any(String));
    }
    expect(await fuzz.fhir.search('ClaimResponse')).toEqual([]);
    expect(await fuzz.fhir.search('PaymentReconciliation')).toEqual([]);
    expect(await checkBooks(serverRepo(t, 'fuzz-835'))).toEqual([]);
  });

  it('needs the webhook scope', async () => {
    const res = await post(fixture('plb.835'), await t.token('system/Patient.r'));
    expect(res.status).toBe(403);
  });

  it('tenants do not see each other: another tenant\'s remittance finds no claim here', async () => {
    const other = await t.token('system/*.cruds webhook', 'other-tenant');
    const { claim } = await claimFor('PCN-TENANT-1');
    const file = fixture('unknown-claim.835').replaceAll('PCN-LATER-1', 'PCN-TENANT-1').replaceAll('EFT-UNKNOWN-1', 'EFT-TENANT-1');
    const res = await post(file, other);
    expect(res.body.remittances[0]).toMatchObject({ applied: 0, waiting: 1 });
    expect(await responsesOf(claim.id)).toEqual([]);
  });
});

