import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ClaimResponse, PaymentReconciliation } from '@medplum/fhirtypes';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { C4BB, client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';

/**
 * An 835 longer than the importer's batch of claims (inbound/x12-835/import.ts, CLAIM_BATCH = 100):
 * every claim payment is booked as it would be alone, in file order, whichever batch it falls in:
 * a reversal names a response written in an earlier batch, a correction follows its reversal in
 * the same batch, unknown claims wait, and one account's claims follow each other.
 */
let t: TestApp;
let c: Client;
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token('system/*.cruds'));
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const post = async (body: string) =>
  request(t.app).post('/api/remittances').auth(await t.token('system/*.cruds'), { type: 'bearer' }).set('Content-Type', 'application/edi-x12').send(body);
const memberLiability = (cr: ClaimResponse) => cr.total?.find((x) => x.category.coding?.[0]?.system === C4BB)?.amount?.value;

/** CLP with its CAS (contractual CO-45 and patient coinsurance PR-2) and patient name: charge − paid = CO + PR. */
const clp = (billId: string, status: string, charge: number, paid: number, patient: number, payerClaimId: string): string[] => [
  `CLP*${billId}*${status}*${charge}*${paid}*${patient}*12*${payerClaimId}*11*1`,
  `CAS*CO*45*${charge - paid - patient}`,
  `CAS*PR*2*${patient}`,
  'NM1*QC*1*DOE*JANE****MI*W123456789',
];

function file(trace: string, claims: string[][], total: number): string {
  const body = [
    'ST*835*0001*005010X221A1',
    `BPR*I*${total.toFixed(2)}*C*ACH*CCP*01*999999992*DA*123456*1512345678**01*999988880*DA*98765*20240510`,
    `TRN*1*${trace}*1512345678`,
    'N1*PR*ACME HEALTH PLAN*XV*ACME01',
    'N1*PE*CITY CLINIC*XX*1234567893',
    'LX*1',
    ...claims.flat(),
  ];
  return [
    'ISA*00*          *00*          *ZZ*ACMEHEALTHPLAN *ZZ*CITYCLINIC     *240510*1200*^*00501*000000950*0*P*:',
    'GS*HP*ACMEHEALTHPLAN*CITYCLINIC*20240510*1200*950*X*005010X221A1',
    ...body,
    `SE*${body.length + 1}*0001`,
    'GE*1*950',
    'IEA*1*000000950',
  ].join('~\n') + '~\n';
}

describe('an 835 of more claims than one batch', () => {
  it('books each claim payment in file order as it would alone, across batches', async () => {
    const patients = [await c.patient(), await c.patient(), await c.patient()];
    const claims = [];
    for (let i = 0; i < 110; i += 10) {
      claims.push(...(await Promise.all(Array.from({ length: 10 }, (_, k) => c.claim(patients[(i + k) % 3], { billId: `BATCH-${i + k}` })))));
    }
    const lines = [
      ...claims.map((_, i) => clp(`BATCH-${i}`, '1', 200, 150, 30, `PCC-BATCH-${i}`)), // seq 1-110: the first batch ends at 100
      ...Array.from({ length: 10 }, (_, i) => clp(`BATCH-UNKNOWN-${i}`, '1', 200, 150, 30, `PCC-UNKNOWN-${i}`)), // 111-120: wait
      ...Array.from({ length: 5 }, (_, i) => clp(`BATCH-${i}`, '22', -200, -150, -30, `PCC-BATCH-${i}`)), // 121-125: reverse responses of the first batch
      clp('BATCH-0', '1', 200, 100, 80, 'PCC-BATCH-0-2'), // 126: corrects BATCH-0 after its reversal, in the same batch
    ];
    const res = await post(file('EFT-BATCHES-1', lines, 110 * 150 + 10 * 150 - 5 * 150 + 100));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.remittances).toEqual([expect.objectContaining({ claims: 126, applied: 116, waiting: 10 })]);

    const responses = async (claimId: string) =>
      (await c.fhir.search<ClaimResponse>(`ClaimResponse?request=Claim/${claimId}&_sort=_lastUpdated`)).map((r) => [r.identifier?.[0].value, r.status, memberLiability(r)]);
    expect(await responses(claims[0].id)).toEqual([['PCC-BATCH-0', 'cancelled', 30], ['PCC-BATCH-0-2', 'active', 80]]);
    for (const i of [1, 4]) expect(await responses(claims[i].id)).toEqual([[`PCC-BATCH-${i}`, 'cancelled', 30]]);
    for (const i of [5, 99, 100, 109]) expect(await responses(claims[i].id)).toEqual([[`PCC-BATCH-${i}`, 'active', 30]]);

    const [pr] = await c.fhir.search<PaymentReconciliation>('PaymentReconciliation?identifier=EFT-BATCHES-1');
    expect(pr.detail).toHaveLength(126);
    expect(pr.detail?.map((d) => d.identifier?.value)).toEqual(lines.map((l) => l[0].split('*')[1]));
    expect(pr.detail?.slice(0, 110).map((d) => d.request?.reference)).toEqual(claims.map((cl) => `Claim/${cl.id}`));
    expect(pr.detail?.slice(110, 120).every((d) => d.request === undefined && d.response === undefined)).toBe(true);

    const listed = await request(t.app).get('/admin/unmatched-payments?tenant=default').auth(await t.token('admin'), { type: 'bearer' });
    expect(listed.body.waitingClaimPayments.map((w: { seq: number; billId: string }) => [w.seq, w.billId])).toEqual(
      Array.from({ length: 10 }, (_, i) => [111 + i, `BATCH-UNKNOWN-${i}`]),
    );
  });
});
