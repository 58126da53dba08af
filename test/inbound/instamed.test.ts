import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Basic, PaymentReconciliation } from '@medplum/fhirtypes';
import { listEvents } from '../../src/inbound/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { FORMATS, encode, post, registerSource, reversalOf, sale, voidOf } from '../support/instamed.ts';
import type { Fields, Format } from '../support/instamed.ts';

/** The InstaMed transaction webhook (shared/seeds/002) through HTTP, every trigger in each format. */
let t: TestApp;
let c: Client;
let url: string;
let creds: { username: string; password: string };
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token());
  const source = await registerSource(t, await t.token('admin'));
  url = source.url;
  creds = source.credentials!;
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const txn = (): string => randomUUID().replace(/-/g, '');
const send = (fields: Fields | string, format: Format = 'json', type?: string) => post(t, url, creds, fields, format, type);
const LAST_FOUR_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/payment-card-last-four';
const BRAND_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/payment-card-brand';
const SETTLEMENT_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/payment-settlement-date';

async function owing(total: number) {
  const patientRef = await c.patient();
  const claim = await c.claim(patientRef);
  await c.claimResponse(claim.id, { total, patientRef });
  return { patientRef, claim };
}

async function prs(traceId: string): Promise<PaymentReconciliation[]> {
  return c.fhir.search<PaymentReconciliation>(`PaymentReconciliation?identifier=${traceId}`);
}

describe.each(FORMATS)('%s bodies', (format) => {
  it('Approved applies the payment: PaymentReconciliation with the transaction id, card brand and last four, never the card number', async () => {
    const { claim } = await owing(80);
    const id = txn();
    const res = await send(sale(id, claim.billId, '50.00', { CardLastFourDigits: '4111111111111111' }), format);
    expect(res.status, res.text).toBe(200);
    expect(res.type).toBe('text/plain');
    expect(res.text).toMatch(/^Stored: payment .* applied/);
    expect(await c.paidOn(claim.id)).toBe(50);
    const [pr] = await prs(id);
    expect(pr).toMatchObject({ status: 'active', paymentAmount: { value: 50, currency: 'USD' }, paymentDate: '2017-12-14' });
    expect(pr.identifier?.map((i) => i.value)).toContain(id);
    expect(pr.detail?.[0].identifier?.value).toBe(id);
    expect(JSON.stringify(pr.extension)).toContain(BRAND_EXT);
    expect(pr.extension?.find((e) => e.url === LAST_FOUR_EXT)?.valueString).toBe('1111');
    const stored = JSON.stringify(pr) + JSON.stringify(await listEvents(t.db, 'default', 'instamed'));
    expect(stored).not.toContain('4111111111111111');
  });

  it('the same message again answers 200 and changes nothing', async () => {
    const { claim } = await owing(80);
    const message = sale(txn(), claim.billId, '30.00');
    expect((await send(message, format)).status).toBe(200);
    const again = await send(message, format);
    expect(again.status).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(30);
    expect(await prs(message.PaymentTransactionID!)).toHaveLength(1);
    const journal = (await listEvents(t.db, 'default', 'instamed')).filter((e) => e.dedupeKey.includes(message.PaymentTransactionID!));
    expect(journal.map((e) => e.status)).toEqual(['processed', 'duplicate']);
    expect(journal[0].rawBody).toBe(encode(message, format).body);
    expect(journal[0].contentType).toBe(encode(message, format).type);
  });

  it('Voided (same id) cancels the PaymentReconciliation and gives everything back', async () => {
    const { claim } = await owing(40);
    const id = txn();
    await send(sale(id, claim.billId, '60.00'), format);
    const res = await send(voidOf(id, claim.billId, '60.00'), format);
    expect(res.status, res.text).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(0);
    const [pr] = await prs(id);
    expect(pr.status).toBe('cancelled');
  });

  it('Refunded, Returned and Chargeback (new ids) are adjustments naming the original, partial or full', async () => {
    const { claim } = await owing(100);
    const id = txn();
    await send(sale(id, claim.billId, '90.00'), format);
    const refund = txn();
    expect((await send(reversalOf('refund', refund, id, claim.billId, '10.00'), format)).status).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(80);
    expect((await send(reversalOf('return', txn(), id, claim.billId, '20.00'), format)).status).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(60);
    const chargeback = txn();
    expect((await send(reversalOf('chargeback', chargeback, id, claim.billId, '60.00'), format)).status).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(0);
    const [adjustment] = await prs(refund);
    expect(adjustment.paymentAmount.value).toBe(-10);
    expect(adjustment.detail?.[0]).toMatchObject({ type: { coding: [{ code: 'adjustment' }] }, predecessor: { value: id } });
    // Beyond the payment: 400 with the reason, journalled, nothing moved.
    const over = await send(reversalOf('refund', txn(), id, claim.billId, '1.00'), format);
    expect(over.status).toBe(400);
    expect(over.text.length).toBeGreaterThan(0);
    expect(over.text).not.toContain('\n');
    expect(await c.paidOn(claim.id)).toBe(0);
  });

  it('Settlement records the date on the original; Settlement Error flags it; no money moves', async () => {
    const { claim } = await owing(100);
    const id = txn();
    await send(sale(id, claim.billId, '25.00'), format);
    const settled = await send(sale(id, claim.billId, '25.00', { CurrentTransactionStatusCode: 'S', CurrentTransactionStatusDescription: 'Settlement', ResponseDateTime: '12/15/2017 02:00:00 AM' }), format);
    expect(settled.status, settled.text).toBe(200);
    let [pr] = await prs(id);
    expect(pr.extension?.find((e) => e.url === SETTLEMENT_EXT)?.valueDate).toBe('2017-12-15');
    expect((await send(sale(id, claim.billId, '25.00', { CurrentTransactionStatusCode: 'SE', CurrentTransactionStatusDescription: 'Settlement Error' }), format)).status).toBe(200);
    [pr] = await prs(id);
    expect(pr.outcome).toBe('error');
    expect(await c.paidOn(claim.id)).toBe(25);
  });

  it('Declined, Error and authorisation only are journalled and move no money', async () => {
    const { claim } = await owing(100);
    for (const [code, description] of [['D', 'Declined'], ['E', 'Error'], ['A', 'Authorized'], ['', 'Error']]) {
      const id = txn();
      const res = await send(sale(id, claim.billId, '10.00', { CurrentTransactionStatusCode: code || null, CurrentTransactionStatusDescription: description }), format);
      expect(res.status, res.text).toBe(200);
      expect(res.text).toMatch(/no money moved/);
      expect(await prs(id)).toHaveLength(0);
    }
    expect(await c.paidOn(claim.id)).toBeUndefined();
  });

  it('a payment for an unknown bill id is held (200) and applies when its claim and ClaimResponse arrive through /fhir', async () => {
    const billId = `later-${txn()}`;
    const id = txn();
    const res = await send(sale(id, billId, '15.00'), format);
    expect(res.status, res.text).toBe(200);
    expect(res.text).toMatch(/waits for its claim/);
    const journal = (await listEvents(t.db, 'default', 'instamed')).at(-1)!;
    expect(journal.status).toBe('unmatched');
    expect(await prs(id)).toHaveLength(0);
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef, { billId });
    expect(await prs(id)).toHaveLength(1);
    await c.claimResponse(claim.id, { total: 100, patientRef });
    expect(await c.paidOn(claim.id)).toBe(15);
    // The sender's retry of the same message changes nothing.
    expect((await send(sale(id, billId, '15.00'), format)).status).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(15);
  });

  it('Payment plan Created/Updated is a Basic searchable by patient and plan id; installments carry the plan id', async () => {
    const { claim, patientRef } = await owing(300);
    const planId = `plan-${txn()}`;
    const plan: Fields = { PaymentPlanID: planId, PaymentPlanTransactionType: 'Installment', InstallmentCount: '3', AdditionalCode1: claim.billId, ResponseDateTime: '01/02/2018 10:00:00 AM', PatientID: null };
    expect((await send(plan, format)).status).toBe(200);
    expect((await send({ ...plan, InstallmentCount: '4' }, format)).status).toBe(200);
    const found = await c.fhir.search<Basic>(`Basic?patient=${patientRef}`);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ subject: { reference: patientRef }, created: '2018-01-02', identifier: [{ value: planId }] });
    expect(found[0].extension?.find((e) => e.url.endsWith('payment-plan-installment-count'))?.valuePositiveInt).toBe(4);
    expect((await c.fhir.search<Basic>(`Basic?identifier=${planId}`))[0].id).toBe(found[0].id);
    const installment = txn();
    expect((await send(sale(installment, claim.billId, '100.00', { PaymentPlanID: planId, InstallmentSequenceNumber: '1', InstallmentCount: '4' }), format)).status).toBe(200);
    const [pr] = await c.fhir.search<PaymentReconciliation>(`PaymentReconciliation?identifier=${planId}`);
    expect(pr.identifier?.map((i) => i.value)).toContain(installment);
  });

  it('refuses an unreadable or incomplete message with a one-line 400, journalled raw, nothing stored', async () => {
    const { claim } = await owing(100);
    const cases: Fields[] = [
      sale(txn(), claim.billId, '-5.00'),
      sale(txn(), claim.billId, 'abc'),
      sale(txn(), claim.billId, '10.00', { CurrentTransactionStatusCode: 'ZZ', CurrentTransactionStatusDescription: 'Pending review' }),
      sale(txn(), claim.billId, '10.00', { CurrentTransactionStatusCode: null, CurrentTransactionStatusDescription: null }),
      sale(txn(), claim.billId, '10.00', { AdditionalCode1: null }),
      sale(txn(), claim.billId, '10.00', { ResponseDateTime: '13/45/2017 99:00:00 PM' }),
      reversalOf('refund', txn(), '', claim.billId, '1.00'),
      { ...sale('', claim.billId, '10.00') },
    ];
    for (const fields of cases) {
      const res = await send(fields, format);
      expect(res.status, JSON.stringify(fields)).toBe(400);
      expect(res.text).not.toMatch(/\n/);
      expect((res as unknown as { res: { statusMessage: string } }).res.statusMessage).toBe(res.text.slice(0, 200));
    }
    expect(await c.paidOn(claim.id)).toBeUndefined();
  });
});

describe('out of order', () => {
  it('a refund before its original waits, and applies when the original arrives', async () => {
    const { claim } = await owing(100);
    const id = txn();
    const early = await send(reversalOf('refund', txn(), id, claim.billId, '5.00'));
    expect(early.status, early.text).toBe(200);
    expect(early.text).toMatch(/waits for the original/);
    expect((await send(sale(id, claim.billId, '40.00'))).status).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(35);
  });

  it('a void before its original waits; the original then lands cancelled', async () => {
    const { claim } = await owing(100);
    const id = txn();
    expect((await send(voidOf(id, claim.billId, '40.00'))).status).toBe(200);
    expect((await send(sale(id, claim.billId, '40.00'))).status).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(0);
  });
});

describe('source options', () => {
  it('claimIdentifierSystem: bill ids are looked up in the source\'s system, not the tenant\'s', async () => {
    const system = 'https://clinic.example/bill-id';
    const source = await registerSource(t, await t.token('admin'), { claimIdentifierSystem: system });
    const patientRef = await c.patient();
    const billId = `own-${txn()}`;
    const claim = await c.fhir.create({ ...(await c.fhir.read(`Claim/${(await c.claim(patientRef)).id}`)), id: undefined, meta: undefined, identifier: [{ system, value: billId }] });
    await c.claimResponse(claim.id, { total: 100, patientRef });
    const res = await post(t, source.url, source.credentials!, sale(txn(), billId, '7.00'));
    expect(res.status, res.text).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(7);
    // The default source looks in the tenant's system: the same bill id is unknown there (held).
    expect((await send(sale(txn(), billId, '7.00'))).text).toMatch(/waits for its claim/);
  });
});

describe('bodies', () => {
  it('field names match case-insensitively and a trigger name in the description is enough', async () => {
    const { claim } = await owing(100);
    const body = JSON.stringify({ paymenttransactionid: txn(), CURRENTTRANSACTIONSTATUSDESCRIPTION: 'Approved', amount: '12.50', additionalcode1: claim.billId });
    expect((await send(body)).status).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(12.5);
  });

  it('refuses XML with a DOCTYPE or entities (the billion laughs) without expanding them', async () => {
    const bomb = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Transaction><Amount>&lol2;</Amount></Transaction>`;
    const res = await send(bomb, 'xml', 'application/xml');
    expect(res.status).toBe(400);
    expect(res.text).toMatch(/DOCTYPE/);
    const external = `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Transaction><AdditionalCode1>&xxe;</AdditionalCode1></Transaction>`;
    expect((await send(external, 'xml', 'text/xml')).status).toBe(400);
  });

  it('refuses malformed XML, JSON and NVP with 400, and unknown content types with 415', async () => {
    for (const [body, type] of [
      ['<Transaction><Amount>1</Transaction>', 'application/xml'],
      ['<Transaction>', 'text/xml'],
      ['{"PaymentTransactionID":', 'application/json'],
      ['PaymentTransactionID=%zz&amount=1', 'application/x-www-form-urlencoded'],
      ['=1&=2', 'application/x-www-form-urlencoded'],
      ['amount=1&Amount=2', 'application/x-www-form-urlencoded'],
      ['', 'application/json'],
    ]) {
      const res = await send(body, 'json', type);
      expect(res.status, body).toBe(400);
    }
    expect((await send('hello', 'json', 'text/csv')).status).toBe(415);
  });

  it('a body over 1 MiB is 413, and journalled', async () => {
    const res = await send(JSON.stringify({ AdditionalInfo1: 'x'.repeat(1024 * 1024 + 10) }));
    expect(res.status).toBe(413);
    const last = (await listEvents(t.db, 'default', 'instamed')).at(-1)!;
    expect(last.response?.status).toBe(413);
  });
});
