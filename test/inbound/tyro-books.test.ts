import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ClaimResponse, Organization, PaymentReconciliation } from '@medplum/fhirtypes';
import { listEvents } from '../../src/inbound/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { C4BB, client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { postSigned, registerTyro, transaction, txnId } from '../support/tyro.ts';
import type { TxnOpts } from '../support/tyro.ts';

/** What Tyro events do to the books: ClaimResponse, the fund's PaymentReconciliation, order, suspense, amounts. */
let t: TestApp;
let c: Client;
let url: string;
let secret: string;
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token());
  const source = await registerTyro(t, await t.token('admin'));
  url = source.url;
  secret = source.credentials!.signingSecret!;
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const invoice = (): string => `inv-${randomBytes(5).toString('hex')}`;
const T1 = '2026-12-01T10:00:00.000Z';
const T2 = '2026-12-01T11:00:00.000Z';
const T3 = '2026-12-01T12:00:00.000Z';

async function claimed(billId = invoice()) {
  const patientRef = await c.patient();
  return { patientRef, claim: await c.claim(patientRef, { billId }) };
}

async function send(event: string, o: Partial<TxnOpts> & Pick<TxnOpts, 'id' | 'invoiceReference'>, extra?: Record<string, unknown>) {
  const res = await postSigned(t, url, secret, { event, transaction: { ...transaction({ modified: T1, ...o }), ...extra } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { result: string; claimResponseId?: string; paymentReconciliationId?: string };
}

const responseOf = async (id: string): Promise<ClaimResponse> => {
  const found = await c.fhir.search<ClaimResponse>(`ClaimResponse?identifier=${id}`);
  expect(found).toHaveLength(1);
  return found[0];
};
const reconciliationsOf = (id: string) => c.fhir.search<PaymentReconciliation>(`PaymentReconciliation?identifier=${id}`);
const total = (cr: ClaimResponse, code: string) => cr.total?.find((x) => x.category.coding?.some((k) => k.code === code))?.amount.value;

describe('mapping', () => {
  it('approved: one ClaimResponse, items with benefit and gap, the fund as insurer Organization; it validates', async () => {
    const { claim, patientRef } = await claimed();
    const id = txnId();
    const out = await send('healthFundApprovedInvoice', { id, invoiceReference: claim.billId, items: [[8000, 2000], [4550, 1005]] });
    expect(out.result).toBe('recorded');
    const cr = await responseOf(id);
    expect(cr).toMatchObject({ status: 'active', use: 'claim', outcome: 'complete', request: { reference: `Claim/${claim.id}` }, patient: { reference: patientRef }, created: T1 });
    expect(cr.identifier).toEqual([{ system: 'https://fhir-billing.org/fhir/identifier/tyro-transaction-id', value: id }]);
    expect(cr.disposition).toMatch(/healthFundApprovedInvoice.*claim 1 approved \(Payment Approved\)/);
    expect(cr.item?.map((i) => i.adjudication.map((a) => [a.category.coding?.[0].code, a.amount?.value]))).toEqual([
      [['benefit', 80], ['memberliability', 20]],
      [['benefit', 45.5], ['memberliability', 10.05]],
    ]);
    expect(cr.item![0].adjudication[1].category.coding![0].system).toBe(C4BB);
    expect(total(cr, 'benefit')).toBe(125.5);
    expect(total(cr, 'memberliability')).toBe(30.05);
    const insurer = await c.fhir.read<Organization>(cr.insurer.reference!);
    expect(insurer).toMatchObject({ name: 'Medicare', identifier: [{ system: 'https://fhir-billing.org/fhir/identifier/tyro-funder', value: 'medicare' }] });
    const outcome = await c.fhir.validate(`ClaimResponse/${cr.id}`);
    expect(outcome.issue.filter((i: { severity: string }) => i.severity === 'error')).toEqual([]);
    expect(await reconciliationsOf(id)).toHaveLength(0);
  });

  it('paid: the same ClaimResponse gains the payment; the fund\'s PaymentReconciliation names the Claim, exact amounts', async () => {
    const { claim } = await claimed();
    const id = txnId();
    await send('healthFundApprovedInvoice', { id, invoiceReference: claim.billId, items: [[3333, 1]] });
    const out = await send('healthFundPaidInvoice', { id, invoiceReference: claim.billId, modified: T2, items: [[3333, 1]] });
    expect(out.result).toBe('recorded');
    const cr = await responseOf(id);
    expect(cr.payment).toMatchObject({ amount: { value: 33.33 }, date: '2026-12-01' });
    const [pr] = await reconciliationsOf(id);
    expect(pr).toMatchObject({
      status: 'active',
      paymentAmount: { value: 33.33 },
      paymentDate: '2026-12-01',
      paymentIssuer: { reference: cr.insurer.reference },
      detail: [{ request: { reference: `Claim/${claim.id}` }, response: { reference: `ClaimResponse/${cr.id}` }, amount: { value: 33.33 } }],
    });
    expect(pr.identifier?.[0].value).toBe(id);
    const outcome = await c.fhir.validate(`PaymentReconciliation/${pr.id}`);
    expect(outcome.issue.filter((i: { severity: string }) => i.severity === 'error')).toEqual([]);
  });

  it('the gap is the patient responsibility a patient payment applies against', async () => {
    const { claim } = await claimed();
    await send('healthFundApprovedInvoice', { id: txnId(), invoiceReference: claim.billId, items: [[8000, 2500]] });
    const res = await c.pay({ billId: claim.billId, paymentAmount: 30, paymentTraceId: txnId() });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data).toMatchObject({ amountSetOnClaim: 25, excessAmount: 5 });
    expect(await c.paidOn(claim.id)).toBe(25);
  });

  it('a payment made before the fund decided waits as credit, and applies once the gap is known', async () => {
    const { claim } = await claimed();
    await c.pay({ billId: claim.billId, paymentAmount: 15, paymentTraceId: txnId() });
    expect(await c.paidOn(claim.id)).toBe(0);
    await send('healthFundApprovedInvoice', { id: txnId(), invoiceReference: claim.billId, items: [[8000, 1200]] });
    expect(await c.paidOn(claim.id)).toBe(12);
  });
});

describe('order and duplicates', () => {
  it('the same event again is a duplicate: 200, journalled, nothing written twice', async () => {
    const { claim } = await claimed();
    const id = txnId();
    const body = { event: 'healthFundPaidInvoice', transaction: transaction({ id, invoiceReference: claim.billId, modified: T1 }) };
    expect((await postSigned(t, url, secret, body)).body.result).toBe('recorded');
    const again = await postSigned(t, url, secret, body);
    expect(again.status).toBe(200);
    expect(again.body.result).toBe('duplicate');
    expect(await reconciliationsOf(id)).toHaveLength(1);
    expect((await responseOf(id)).meta?.versionId).toBe('1');
    const journal = (await listEvents(t.db, 'default', 'tyro')).filter((e) => e.dedupeKey.startsWith(id));
    expect(journal.map((e) => e.status)).toEqual(['processed', 'duplicate']);
  });

  it('paid before approved: the paid state stands, the late approved answers 200 and changes nothing', async () => {
    const { claim } = await claimed();
    const id = txnId();
    await send('healthFundPaidInvoice', { id, invoiceReference: claim.billId, modified: T2 });
    const late = await send('healthFundApprovedInvoice', { id, invoiceReference: claim.billId, modified: T1, items: [[1, 1]] });
    expect(late.result).toBe('stale');
    const cr = await responseOf(id);
    expect(cr.meta?.versionId).toBe('1');
    expect(cr.payment?.amount.value).toBe(80);
    expect(await reconciliationsOf(id)).toHaveLength(1);
  });

  it('approved after paid, even with a newer modified, never moves the final state back', async () => {
    const { claim } = await claimed();
    const id = txnId();
    await send('healthFundApprovedInvoice', { id, invoiceReference: claim.billId, modified: T1 });
    await send('healthFundPaidInvoice', { id, invoiceReference: claim.billId, modified: T2 });
    expect((await send('healthFundApprovedInvoice', { id, invoiceReference: claim.billId, modified: T3, items: [[1, 1]] })).result).toBe('stale');
    expect((await responseOf(id)).payment?.amount.value).toBe(80);
  });

  it('rejected after completed changes nothing; completed then paid moves on', async () => {
    const { claim } = await claimed();
    const id = txnId();
    await send('invoiceCompleted', { id, invoiceReference: claim.billId, modified: T1, businessStatus: 'completed' });
    const rejected = await send('healthFundRejectedInvoice', { id, invoiceReference: claim.billId, modified: T2, claimStatus: 'rejected', businessStatus: 'declined' });
    expect(rejected.result).toBe('stale');
    expect((await responseOf(id)).outcome).toBe('complete');
    expect((await send('healthFundPaidInvoice', { id, invoiceReference: claim.billId, modified: T3, businessStatus: 'completed' })).result).toBe('recorded');
    expect(await reconciliationsOf(id)).toHaveLength(1);
  });

  it('rejected: outcome error with the claim\'s status; declined via invoiceCompleted likewise', async () => {
    const { claim } = await claimed();
    const id = txnId();
    await send('healthFundRejectedInvoice', { id, invoiceReference: claim.billId, claimStatus: 'Rejected', businessStatus: 'declined', items: [[0, 9000]] });
    const cr = await responseOf(id);
    expect(cr.outcome).toBe('error');
    expect(cr.disposition).toMatch(/claim 1 rejected/);
    const id2 = txnId();
    await send('invoiceCompleted', { id: id2, invoiceReference: claim.billId, businessStatus: 'declined', claimStatus: 'rejected' });
    expect((await responseOf(id2)).outcome).toBe('error');
  });

  it('cancelled: the ClaimResponse is cancelled, so it no longer states a responsibility; nothing moves it back', async () => {
    const { claim } = await claimed();
    const id = txnId();
    await send('healthFundApprovedInvoice', { id, invoiceReference: claim.billId, modified: T1 });
    expect((await send('invoiceCancelled', { id, invoiceReference: claim.billId, modified: T2 })).result).toBe('recorded');
    expect(await responseOf(id)).toMatchObject({ status: 'cancelled', outcome: 'error' });
    expect((await send('healthFundApprovedInvoice', { id, invoiceReference: claim.billId, modified: T3 })).result).toBe('stale');
    const pay = await c.pay({ billId: claim.billId, paymentAmount: 10, paymentTraceId: txnId() });
    expect(pay.body.data).toMatchObject({ amountSetOnClaim: 0, excessAmount: 10 });
  });

  it('an older event than the recorded one answers 200 and changes nothing, also before any final state', async () => {
    const { claim } = await claimed();
    const id = txnId();
    await send('healthFundApprovedInvoice', { id, invoiceReference: claim.billId, modified: T2, items: [[8000, 2000]] });
    expect((await send('invoiceCreated', { id, invoiceReference: claim.billId, modified: T1, items: [[1, 1]] })).result).toBe('stale');
    expect(total(await responseOf(id), 'memberliability')).toBe(20);
  });
});

describe('unknown invoiceReference', () => {
  it('waits in the suspense (200) and applies when the Claim arrives, with what came last', async () => {
    const billId = invoice();
    const id = txnId();
    expect((await send('healthFundApprovedInvoice', { id, invoiceReference: billId, modified: T1 })).result).toBe('waiting');
    expect((await send('healthFundPaidInvoice', { id, invoiceReference: billId, modified: T2, items: [[6000, 4000]] })).result).toBe('waiting');
    expect((await send('healthFundApprovedInvoice', { id, invoiceReference: billId, modified: T1 })).result).toBe('duplicate');
    expect(await c.fhir.search(`ClaimResponse?identifier=${id}`)).toHaveLength(0);
    const journal = (await listEvents(t.db, 'default', 'tyro')).filter((e) => e.dedupeKey.startsWith(id));
    expect(journal.map((e) => e.status)).toEqual(['unmatched', 'unmatched', 'duplicate']);

    const { claim } = await claimed(billId);
    const cr = await responseOf(id);
    expect(cr.request?.reference).toBe(`Claim/${claim.id}`);
    expect(total(cr, 'memberliability')).toBe(40);
    const [pr] = await reconciliationsOf(id);
    expect(pr.paymentAmount.value).toBe(60);
    const pay = await c.pay({ billId, paymentAmount: 40, paymentTraceId: txnId() });
    expect(pay.body.data).toMatchObject({ amountSetOnClaim: 40 });
    // It no longer waits: a later event meets the recorded (final) paid state.
    expect((await send('healthFundPaidInvoice', { id, invoiceReference: billId, modified: T3, items: [[6000, 4000]] })).result).toBe('stale');
  });
});

describe('amounts: cents or strings, exact', () => {
  it('strings alone, with thousands separators; cents alone; never a float', async () => {
    const { claim } = await claimed();
    const id = txnId();
    await send('healthFundApprovedInvoice', { id, invoiceReference: claim.billId }, {
      claims: [
        { status: 'approved', claimItems: [{ status: 'approved', amountActualBenefitString: '$1,234.56', amountGapString: '$0.10' }] },
        { status: 'approved', claimItems: [{ status: 'approved', amountActualBenefit: 1, amountGap: 20 }] },
      ],
    });
    const cr = await responseOf(id);
    expect(total(cr, 'benefit')).toBe(1234.57);
    // 0.10 + 0.20 is 0.30 here, not 0.30000000000000004.
    expect(total(cr, 'memberliability')).toBe(0.3);
    expect(JSON.stringify(cr)).not.toContain('0.30000000000000004');
  });

  it('the expected benefit stands in until the actual one is known; claim-level amounts count when items carry none', async () => {
    const { claim } = await claimed();
    const id = txnId();
    await send('memberApprovedInvoice', { id, invoiceReference: claim.billId }, {
      claims: [{ status: 'approved', amountExpectedBenefit: 8000, amountExpectedBenefitString: '$80.00', amountGap: 2000, amountGapString: '$20.00', claimItems: [] }],
    });
    const cr = await responseOf(id);
    expect(total(cr, 'benefit')).toBe(80);
    expect(total(cr, 'memberliability')).toBe(20);
  });
});
