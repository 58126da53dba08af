import { createHmac, randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClaimResponse } from '@medplum/fhirtypes';
import { TyroBody } from '../../src/formats/tyro.ts';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { startReceiver } from '../support/receiver.ts';
import type { ReceivedRequest, Receiver } from '../support/receiver.ts';
import { OWN_SD, classicSubscription } from '../support/subscriptions.ts';
import { postSigned, registerTyro, transaction, txnId } from '../support/tyro.ts';
import { startTestWorker } from '../support/worker.ts';

/** The `tyro` payload format: FHIR changes out as Tyro's invoice events, signed; in, then out, keeps what FHIR keeps. */
let t: TestApp;
let c: Client;
let other: Client;
let worker: DeliveryWorker;
let receiver: Receiver;
let source: { url: string; secret: string };
let otherSource: { url: string; secret: string };
const OUT_SECRET = 'tyro-outbound-secret-0123456789';

beforeAll(async () => {
  t = await startTestApp({ allowPrivateNetworks: true });
  c = client(t, await t.token());
  other = client(t, await t.token('system/*.cruds', 'roundtrip'));
  const admin = await t.token('admin');
  const s = await registerTyro(t, admin);
  source = { url: s.url, secret: s.credentials!.signingSecret! };
  const o = await registerTyro(t, admin, { tenant: 'roundtrip' });
  otherSource = { url: o.url, secret: o.credentials!.signingSecret! };
  worker = await startTestWorker(t.db);
  receiver = await startReceiver();
  const extension = [
    { url: `${OWN_SD}/subscription-payload-format`, valueCode: 'tyro' },
    { url: `${OWN_SD}/subscription-secret`, valueString: OUT_SECRET },
  ];
  // One path per subscription: order is promised within a subscription, not across two.
  for (const [criteria, path] of [['ClaimResponse?', 'claim-response'], ['Claim?', 'claim']]) {
    const res = await request(t.app).post('/fhir/Subscription').auth(c.token, { type: 'bearer' }).send(classicSubscription(criteria, `${receiver.url}/tyro/${path}`, { extension }));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  }
});
afterAll(async () => {
  await worker.stop();
  await receiver.close();
  await t.close();
});

const bodyOf = (r: ReceivedRequest) => JSON.parse(r.body) as { event: string; transaction: Record<string, any> };

describe('tyro payload format', () => {
  it('approved, paid and invoiceCompleted go out signed over the exact bytes; fed back in they give the same ClaimResponse', async () => {
    const billId = `inv-${randomBytes(5).toString('hex')}`;
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef, { billId });
    const id = txnId();
    const sent = (event: string, modified: string) => ({
      event,
      transaction: transaction({ id, invoiceReference: billId, modified, businessStatus: event === 'healthFundPaidInvoice' ? 'completed' : 'outstanding', items: [[8000, 2000], [4550, 1005]] }),
    });
    expect((await postSigned(t, source.url, source.secret, sent('healthFundApprovedInvoice', '2026-12-01T10:00:00.000Z'))).status).toBe(200);
    expect((await postSigned(t, source.url, source.secret, sent('healthFundPaidInvoice', '2026-12-01T11:00:00.000Z'))).status).toBe(200);
    // The patient pays the gap: the Claim's paid amount now covers it, which completes the invoice.
    expect((await c.pay({ billId, paymentAmount: 30.05, paymentTraceId: txnId() })).status).toBe(200);

    const all = await receiver.waitFor(3);
    await new Promise((r) => setTimeout(r, 300));
    const fromClaimResponses = all.filter((r) => r.url.endsWith('/claim-response'));
    const fromClaims = all.filter((r) => r.url.endsWith('/claim'));
    expect(fromClaimResponses.map((r) => bodyOf(r).event)).toEqual(['healthFundApprovedInvoice', 'healthFundPaidInvoice']);
    expect(fromClaims.map((r) => bodyOf(r).event)).toEqual(['invoiceCompleted']);
    const received = [...fromClaimResponses, ...fromClaims];
    for (const r of received) {
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      const ts = r.headers['x-sender-timestamp'] as string;
      expect(ts).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(r.headers['x-sender-signature']).toBe(createHmac('sha256', OUT_SECRET).update(ts + r.body).digest('hex'));
      const parsed = TyroBody.safeParse(JSON.parse(r.body));
      expect(parsed.success, `${r.body} ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
    }

    const paid = bodyOf(received[1]).transaction;
    const original = sent('healthFundPaidInvoice', '2026-12-01T11:00:00.000Z').transaction as Record<string, any>;
    expect(paid).toMatchObject({ _id: id, invoiceReference: billId, modified: original.modified, businessStatus: 'completed', funder: { code: 'medicare', name: 'Medicare' } });
    expect(paid.claims).toHaveLength(1);
    expect(paid.claims[0]).toMatchObject({ status: 'approved', amountExpectedBenefit: 12550, amountExpectedBenefitString: '$125.50', amountGap: 3005, amountGapString: '$30.05' });
    const keep = (item: Record<string, unknown>) => ({ status: item.status, gatewayCode: item.gatewayCode, amountActualBenefit: item.amountActualBenefit, amountActualBenefitString: item.amountActualBenefitString, amountGap: item.amountGap, amountGapString: item.amountGapString });
    expect(paid.claims[0].claimItems.map(keep)).toEqual(original.claims[0].claimItems.map(keep));
    expect(bodyOf(received[2]).transaction).toMatchObject({ _id: id, businessStatus: 'completed' });

    // Fed back in (another tenant holding the same invoice): the same ClaimResponse, less server fields.
    const theirs = await other.claim(await other.patient(), { billId });
    const back = await postSigned(t, otherSource.url, otherSource.secret, received[1].body);
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    const strip = (cr: ClaimResponse) => ({ ...cr, id: undefined, meta: undefined, request: undefined, patient: undefined, insurer: { display: cr.insurer.display }, disposition: undefined });
    const [mine] = await c.fhir.search<ClaimResponse>(`ClaimResponse?identifier=${id}`);
    const [copy] = await other.fhir.search<ClaimResponse>(`ClaimResponse?identifier=${id}`);
    expect(copy.request?.reference).toBe(`Claim/${theirs.id}`);
    expect(strip(copy)).toEqual(strip(mine));
    expect(claim.id).toBeDefined();
  });

  it('renders nothing for what Tyro has no event for (a queued ClaimResponse, other resources)', async () => {
    const before = receiver.received.length;
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef);
    await postSigned(t, source.url, source.secret, { event: 'invoiceCreated', transaction: transaction({ id: txnId(), invoiceReference: claim.billId, modified: '2026-12-01T10:00:00.000Z' }) });
    // A marker that does go out, so we know the worker is past the others.
    await postSigned(t, source.url, source.secret, { event: 'healthFundRejectedInvoice', transaction: transaction({ id: txnId(), invoiceReference: claim.billId, modified: '2026-12-01T10:00:00.000Z', claimStatus: 'rejected', businessStatus: 'declined' }) });
    const got = await receiver.waitFor(before + 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(got.slice(before).map((r) => bodyOf(r).event)).toEqual(['healthFundRejectedInvoice']);
    expect(bodyOf(got[before]).transaction).toMatchObject({ businessStatus: 'declined', claims: [{ status: 'rejected' }] });
  });

  it('an AUD tenant\'s events go out in AUD: currencyCode and cents as its FHIR Money has them', async () => {
    const admin = await t.token('admin');
    const created = await request(t.app).post('/admin/tenants').auth(admin, { type: 'bearer' }).send({ id: 'tyro-aud', name: 'Sydney', currency: 'AUD' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const aud = client(t, await t.token('system/*.cruds', 'tyro-aud'));
    const s = await registerTyro(t, admin, { tenant: 'tyro-aud' });
    const extension = [
      { url: `${OWN_SD}/subscription-payload-format`, valueCode: 'tyro' },
      { url: `${OWN_SD}/subscription-secret`, valueString: OUT_SECRET },
    ];
    const sub = await request(t.app).post('/fhir/Subscription').auth(aud.token, { type: 'bearer' }).send(classicSubscription('ClaimResponse?', `${receiver.url}/tyro-aud`, { extension }));
    expect(sub.status, JSON.stringify(sub.body)).toBe(201);
    const claim = await aud.claim(await aud.patient(), { billId: `inv-${randomBytes(5).toString('hex')}` });
    const before = receiver.received.length;
    const event = { event: 'healthFundApprovedInvoice', transaction: { ...transaction({ id: txnId(), invoiceReference: claim.billId, modified: '2026-12-01T10:00:00.000Z', items: [[8000, 2055]] }), currencyCode: 'AUD' } };
    expect((await postSigned(t, s.url, s.credentials!.signingSecret!, event)).status).toBe(200);
    const got = (await receiver.waitFor(before + 1)).slice(before).find((r) => r.url === '/tyro-aud');
    expect(got).toBeDefined();
    const out = bodyOf(got!).transaction;
    expect(out.currencyCode).toBe('AUD');
    expect(out.claims[0]).toMatchObject({ amountExpectedBenefit: 8000, amountExpectedBenefitString: '$80.00' });
    expect(out.claims[0].claimItems[0]).toMatchObject({ amountGap: 2055, amountGapString: '$20.55' });
  });
});
