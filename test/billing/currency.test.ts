import { readFileSync } from 'node:fs';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Claim, ClaimResponse, PaymentReconciliation } from '@medplum/fhirtypes';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { PAID_EXT, client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { postSigned, registerTyro, transaction, txnId } from '../support/tyro.ts';

/**
 * The books' currency is the tenant's: an AUD tenant takes Tyro (and a Cair body that states AUD)
 * end to end in AUD, a JPY tenant rounds to whole yen, an amount in another currency is a 400 that
 * changes nothing, and the currency cannot change once money is booked.
 */
let t: TestApp;
let admin: string;
let aud: Client;
let jpy: Client;
let tyro: { url: string; secret: string };
beforeAll(async () => {
  t = await startTestApp();
  admin = await t.token('admin');
  for (const [id, currency] of [['aud-clinic', 'AUD'], ['jpy-clinic', 'JPY']]) {
    const res = await adminCall('post', '/admin/tenants', { id, name: `Clinic ${currency}`, currency });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  }
  aud = client(t, await t.token(undefined, 'aud-clinic'));
  jpy = client(t, await t.token(undefined, 'jpy-clinic'));
  const source = await registerTyro(t, admin, { tenant: 'aud-clinic' });
  tyro = { url: source.url, secret: source.credentials!.signingSecret! };
});
afterEach(async () => {
  for (const tenant of ['default', 'aud-clinic', 'jpy-clinic']) await expectBooksBalanced(t, tenant);
});
afterAll(() => t.close());

const adminCall = (method: 'post' | 'patch' | 'get', path: string, body?: object) => request(t.app)[method](path).auth(admin, { type: 'bearer' }).send(body);
const T1 = '2026-12-01T10:00:00.000Z';
const T2 = '2026-12-01T11:00:00.000Z';
const T3 = '2026-12-01T12:00:00.000Z';
const total = (cr: ClaimResponse, code: string) => cr.total?.find((x) => x.category.coding?.some((k) => k.code === code))?.amount;

async function ledgerOf(tenant: string, paymentId?: string): Promise<{ kind: string; amount: string; currency: string }[]> {
  return t.db.query(
    `SELECT kind, amount::text AS amount, currency FROM ledger_entry WHERE tenant_id = $1 AND ($2::text IS NULL OR payment_id = $2) AND amount > 0 ORDER BY id`,
    [tenant, paymentId ?? null],
  );
}

async function paidMoney(c: Client, claimId: string) {
  const claim = await c.fhir.read<Claim>(`Claim/${claimId}`);
  return claim.extension?.find((e) => e.url === PAID_EXT)?.valueMoney;
}

describe('the tenant\'s book currency (admin API)', () => {
  it('is set at creation (default USD), listed, and refused when not an ISO 4217 code or finer than cents', async () => {
    const list = (await adminCall('get', '/admin/tenants')).body.tenants;
    expect(list.find((x: { id: string }) => x.id === 'aud-clinic')).toMatchObject({ currency: 'AUD' });
    expect(list.find((x: { id: string }) => x.id === 'default')).toMatchObject({ currency: 'USD' });
    const plain = await adminCall('post', '/admin/tenants', { id: 'plain-clinic', name: 'Plain' });
    expect(plain.body).toEqual({ id: 'plain-clinic', name: 'Plain', currency: 'USD' });

    for (const [currency, why] of [['ZZZ', /not an ISO 4217 currency/], ['aud', /not an ISO 4217 currency/], ['XAU', /not an ISO 4217/], ['BHD', /BHD has 3 minor digits/], [12, /expected string/]] as const) {
      const res = await adminCall('post', '/admin/tenants', { id: 'bad-clinic', name: 'Bad', currency });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error).toMatch(why);
    }
    expect((await adminCall('get', '/admin/tenants')).body.tenants.some((x: { id: string }) => x.id === 'bad-clinic')).toBe(false);
  });

  it('changes while no money is booked; an unknown tenant is 404, a bad body 400', async () => {
    await adminCall('post', '/admin/tenants', { id: 'moving-clinic', name: 'Moving' });
    const changed = await adminCall('patch', '/admin/tenants/moving-clinic', { currency: 'NZD' });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(changed.body).toEqual({ id: 'moving-clinic', name: 'Moving', currency: 'NZD' });
    expect((await adminCall('patch', '/admin/tenants/no-such-clinic', { currency: 'AUD' })).status).toBe(404);
    expect((await adminCall('patch', '/admin/tenants/moving-clinic', { currency: 'KWD' })).status).toBe(400);
    expect((await adminCall('patch', '/admin/tenants/moving-clinic', { name: 'Renamed' })).status).toBe(400);
    expect((await adminCall('patch', '/admin/tenants/moving-clinic', [])).status).toBe(400);
  });
});

describe('an AUD tenant', () => {
  it('takes Tyro approved → paid → completed in AUD, and the patient pays the gap in AUD: ClaimResponse, PaymentReconciliation, lifecycle and ledger exact', async () => {
    const patientRef = await aud.patient();
    const claim = await aud.claim(patientRef, { billId: `inv-${txnId()}` });
    const id = txnId();
    const send = async (event: string, modified: string, extra: Record<string, unknown> = {}) => {
      const body = { event, transaction: { ...transaction({ id, invoiceReference: claim.billId, modified, items: [[8000, 2050], [4555, 1005]] }), currencyCode: 'AUD', ...extra } };
      const res = await postSigned(t, tyro.url, tyro.secret, body);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body;
    };
    expect((await send('healthFundApprovedInvoice', T1)).result).toBe('recorded');
    expect((await send('healthFundPaidInvoice', T2)).result).toBe('recorded');
    expect((await send('invoiceCompleted', T3, { businessStatus: 'completed' })).result).toBe('stale'); // paid is final

    const [cr] = await aud.fhir.search<ClaimResponse>(`ClaimResponse?identifier=${id}`);
    expect(total(cr, 'benefit')).toEqual({ value: 125.55, currency: 'AUD' });
    expect(total(cr, 'memberliability')).toEqual({ value: 30.55, currency: 'AUD' });
    expect(cr.item!.flatMap((i) => i.adjudication.map((a) => a.amount))).toEqual([
      { value: 80, currency: 'AUD' }, { value: 20.5, currency: 'AUD' }, { value: 45.55, currency: 'AUD' }, { value: 10.05, currency: 'AUD' },
    ]);
    expect(cr.payment?.amount).toEqual({ value: 125.55, currency: 'AUD' });
    const [fund] = await aud.fhir.search<PaymentReconciliation>(`PaymentReconciliation?identifier=${id}`);
    expect(fund.paymentAmount).toEqual({ value: 125.55, currency: 'AUD' });
    expect(fund.detail![0].amount).toEqual({ value: 125.55, currency: 'AUD' });

    // The gap (30.55) is what the patient owes; a Cair-shaped payment that states AUD pays it, 4.45 over.
    const trace = `pi_${txnId()}`;
    const paid = await aud.pay({ billId: claim.billId, paymentAmount: 35, currency: 'AUD', paymentTraceId: trace });
    expect(paid.status, JSON.stringify(paid.body)).toBe(200);
    expect(paid.body.data).toMatchObject({ amountSetOnClaim: 30.55, excessAmount: 4.45 });
    expect(await paidMoney(aud, claim.id)).toEqual({ value: 30.55, currency: 'AUD' });

    const [pr] = await aud.fhir.search<PaymentReconciliation>(`PaymentReconciliation?identifier=${trace}`);
    expect(pr.paymentAmount).toEqual({ value: 35, currency: 'AUD' });
    expect(pr.detail!.map((d) => d.amount)).toEqual([{ value: 30.55, currency: 'AUD' }, { value: 4.45, currency: 'AUD' }]);
    expect(pr.disposition).toMatch(/Applied 30\.55 AUD to claim lifecycle .*; 4\.45 AUD held as a patient credit/);
    const [credit] = await aud.fhir.search(`PatientCredit?patient=${patientRef}`);
    expect(credit).toMatchObject({ amount: { value: 4.45, currency: 'AUD' }, balance: { value: 4.45, currency: 'AUD' } });

    const ledger = await ledgerOf('aud-clinic');
    expect(ledger.map((r) => [r.kind, r.amount, r.currency])).toEqual(
      expect.arrayContaining([['payment.received', '35.00', 'AUD'], ['payment.applied', '30.55', 'AUD'], ['payment.credited', '4.45', 'AUD']]),
    );
    expect(ledger.every((r) => r.currency === 'AUD')).toBe(true);
    const lifecycles = await t.db.query<{ currency: string; paid: string }>(`SELECT currency, patient_paid_amount::text AS paid FROM billing_lifecycle WHERE tenant_id = 'aud-clinic'`);
    expect(lifecycles).toContainEqual({ currency: 'AUD', paid: '30.55' });
  });

  it('takes a Tyro event that names no currency as the tenant\'s (string amounts too)', async () => {
    const claim = await aud.claim(await aud.patient(), { billId: `inv-${txnId()}` });
    const id = txnId();
    const txn = transaction({ id, invoiceReference: claim.billId, modified: T1 });
    const claims = (txn.claims as Record<string, unknown>[]).map((c) => ({
      ...c,
      claimItems: (c.claimItems as Record<string, unknown>[]).map(({ amountActualBenefit: _b, amountGap: _g, ...rest }) => rest),
    }));
    const res = await postSigned(t, tyro.url, tyro.secret, { event: 'healthFundApprovedInvoice', transaction: { ...txn, claims } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const [cr] = await aud.fhir.search<ClaimResponse>(`ClaimResponse?identifier=${id}`);
    expect(total(cr, 'memberliability')).toEqual({ value: 20, currency: 'AUD' });
  });

  it('refuses an amount in another currency with a 400 naming both, and changes nothing', async () => {
    const patientRef = await aud.patient();
    const claim = await aud.claim(patientRef, { billId: `inv-${txnId()}` });
    const id = txnId();
    const tyroUsd = await postSigned(t, tyro.url, tyro.secret, { event: 'healthFundApprovedInvoice', transaction: { ...transaction({ id, invoiceReference: claim.billId, modified: T1 }), currencyCode: 'USD' } });
    expect(tyroUsd.status).toBe(400);
    expect(tyroUsd.body.error).toMatch(/USD.*AUD/);
    expect(await aud.fhir.search(`ClaimResponse?identifier=${id}`)).toEqual([]);

    // Cair is USD by contract: a body without currency is USD, refused on AUD books.
    const before = await ledgerOf('aud-clinic');
    const traces = [`pi_${txnId()}`, `pi_${txnId()}`];
    const cair = await aud.pay({ billId: claim.billId, paymentAmount: 10, paymentTraceId: traces[0] });
    expect(cair.status).toBe(400);
    expect(JSON.stringify(cair.body)).toMatch(/The amount is in USD but this tenant's books are in AUD/);
    const cairJpy = await aud.pay({ billId: claim.billId, paymentAmount: 10, currency: 'JPY', paymentTraceId: traces[1] });
    expect(cairJpy.status).toBe(400);
    expect(JSON.stringify(cairJpy.body)).toMatch(/JPY.*AUD/);
    expect(await ledgerOf('aud-clinic')).toEqual(before);
    expect(await paidMoney(aud, claim.id)).toBeUndefined();
    for (const trace of traces) expect(await aud.fhir.search(`PaymentReconciliation?identifier=${trace}`)).toEqual([]);
    expect((await t.db.query(`SELECT 1 FROM unmatched_payment WHERE tenant_id = 'aud-clinic'`)).length).toBe(0);
  });

  it('refuses an $allocate amount in USD, and an 835 (USD) unless its CUR names AUD', async () => {
    const patientRef = await aud.patient();
    const claim = await aud.claim(patientRef, { billId: `inv-${txnId()}` });
    await aud.claimResponse(claim.id, { total: 50, currency: 'AUD' });
    const other = await aud.claim(patientRef, { billId: `inv-${txnId()}` });
    const extra = await aud.pay({ billId: other.billId, paymentAmount: 7, currency: 'AUD', paymentTraceId: `pi_${txnId()}` });
    expect(extra.body.data).toMatchObject({ amountSetOnClaim: 0, excessAmount: 7 });
    const [credit] = await aud.fhir.search(`PatientCredit?patient=${patientRef}`);
    const usd = await aud.allocate(credit.id, [{ name: 'claim', valueReference: { reference: `Claim/${claim.id}` } }, { name: 'amount', valueMoney: { value: 5, currency: 'USD' } }]);
    expect(usd.status).toBe(400);
    expect(JSON.stringify(usd.body)).toMatch(/USD but this tenant's books are in AUD/);
    const ok = await aud.allocate(credit.id, [{ name: 'claim', valueReference: { reference: `Claim/${claim.id}` } }, { name: 'amount', valueMoney: { value: 5, currency: 'AUD' } }]);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.allocation.at(-1).amount).toEqual({ value: 5, currency: 'AUD' });

    const remit = (body: string) => request(t.app).post('/api/remittances').auth(aud.token, { type: 'bearer' }).set('Content-Type', 'application/edi-x12').send(body);
    const x12 = readFileSync(new URL('../fixtures/x12-835/single-claim.835', import.meta.url), 'latin1');
    const refused = await remit(x12);
    expect(refused.status, JSON.stringify(refused.body)).toBe(400);
    expect(JSON.stringify(refused.body)).toMatch(/USD but this tenant's books are in AUD/);
    const inAud = withCurrency(x12, 'AUD');
    const taken = await remit(inAud);
    expect(taken.status, JSON.stringify(taken.body)).toBe(201);
    const [pr] = await aud.fhir.search<PaymentReconciliation>(`PaymentReconciliation?_id=${taken.body.remittances[0].paymentReconciliationId}`);
    expect(pr.paymentAmount).toEqual({ value: 150, currency: 'AUD' });
  });

  it('keeps its currency once money is booked: a change is 409, naming the currency', async () => {
    const res = await adminCall('patch', '/admin/tenants/aud-clinic', { currency: 'USD' });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('Tenant aud-clinic has money booked in AUD; its book currency cannot change to USD');
    expect((await adminCall('patch', '/admin/tenants/aud-clinic', { currency: 'AUD' })).status).toBe(200); // no change is no change
  });
});

describe('a JPY tenant (no minor digits)', () => {
  it('rounds half-even to whole yen where amounts enter: a ClaimResponse, a payment, an $allocate amount', async () => {
    const patientRef = await jpy.patient();
    const claim = await jpy.claim(patientRef, { billId: `bill-${txnId()}` });
    await jpy.claimResponse(claim.id, { total: 1234.5, currency: 'JPY' }); // half-even: 1234
    const first = await jpy.pay({ billId: claim.billId, paymentAmount: 1000.5, currency: 'JPY', paymentTraceId: `pi_${txnId()}` }); // 1000
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.data).toEqual({ claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 1000 });
    const second = await jpy.pay({ billId: claim.billId, paymentAmount: 301.5, currency: 'JPY', paymentTraceId: `pi_${txnId()}` }); // 302
    expect(second.body.data).toMatchObject({ amountSetOnClaim: 234, excessAmount: 68 });
    expect(await paidMoney(jpy, claim.id)).toEqual({ value: 1234, currency: 'JPY' });

    const tiny = await jpy.pay({ billId: claim.billId, paymentAmount: 0.4, currency: 'JPY', paymentTraceId: `pi_${txnId()}` });
    expect(tiny.status).toBe(400);
    expect(JSON.stringify(tiny.body)).toMatch(/positive after rounding to the minor unit of JPY/);

    const next = await jpy.claim(patientRef, { billId: `bill-${txnId()}` });
    await jpy.claimResponse(next.id, { total: 100, currency: 'JPY' });
    const [credit] = await jpy.fhir.search(`PatientCredit?patient=${patientRef}`);
    const allocated = await jpy.allocate(credit.id, [{ name: 'claim', valueReference: { reference: `Claim/${next.id}` } }, { name: 'amount', valueDecimal: 2.5 }]); // 2
    expect(allocated.status, JSON.stringify(allocated.body)).toBe(200);
    expect(allocated.body.allocation.at(-1).amount).toEqual({ value: 2, currency: 'JPY' });
    expect(allocated.body.balance).toEqual({ value: 66, currency: 'JPY' });
    const again = await jpy.allocate(credit.id, [{ name: 'claim', valueReference: { reference: `Claim/${next.id}` } }, { name: 'amount', valueDecimal: 3.5 }]); // 4
    expect(again.body.balance).toEqual({ value: 62, currency: 'JPY' });
    expect(await paidMoney(jpy, next.id)).toEqual({ value: 6, currency: 'JPY' });
    const nothing = await jpy.allocate(credit.id, [{ name: 'claim', valueReference: { reference: `Claim/${next.id}` } }, { name: 'amount', valueDecimal: 0.5 }]); // 0
    expect(nothing.status).toBe(400);

    const ledger = await ledgerOf('jpy-clinic');
    expect(ledger.every((r) => r.currency === 'JPY' && /^\d+\.00$/.test(r.amount))).toBe(true);
    expect(ledger.filter((r) => r.kind === 'payment.received').map((r) => r.amount)).toEqual(['1000.00', '302.00']);
  });
});

describe('a USD tenant', () => {
  it('keeps working as before, and a Cair body may state USD', async () => {
    const c = client(t, await t.token());
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef);
    await c.claimResponse(claim.id, { total: 40.25 });
    const res = await c.pay({ billId: claim.billId, paymentAmount: 40.245, currency: 'USD', paymentTraceId: `pi_${txnId()}` }); // half-even: 40.24
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data).toMatchObject({ amountSetOnClaim: 40.24 });
    expect(await paidMoney(c, claim.id)).toEqual({ value: 40.24, currency: 'USD' });
    const tyroAud = await registerTyro(t, admin);
    const refused = await postSigned(t, tyroAud.url, tyroAud.credentials!.signingSecret!, { event: 'healthFundApprovedInvoice', transaction: { ...transaction({ id: txnId(), invoiceReference: claim.billId, modified: T1 }), currencyCode: 'AUD' } });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatch(/AUD but this tenant's books are in USD/);
  });
});

/** The 835 with a CUR*PR segment after TRN (and SE's segment count one higher). */
function withCurrency(x12: string, currency: string): string {
  return x12
    .replace(/(TRN\*[^~]*~\s*)/, `$1CUR*PR*${currency}~\n`)
    .replace(/SE\*(\d+)\*/, (_m, n: string) => `SE*${Number(n) + 1}*`)
    .replace('EFT-SINGLE-1', 'EFT-SINGLE-AUD');
}
