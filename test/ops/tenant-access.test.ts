import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { classicSubscription } from '../support/subscriptions.ts';
import { registerSource } from '../support/instamed.ts';
import { runCommand } from '../../src/cli/commands.ts';

/**
 * A tenant's client reads its own tenant's operator views (the routes an admin reads every
 * tenant's with), never another's; an admin names a tenant's FHIR data with X-Tenant; the
 * server states a patient's responsibility, paid, open and credit (GET /admin/patient-balance).
 */
interface Side {
  tenant: string;
  token: string;
  c: Client;
  patient: string;
  claimId: string;
  billId: string;
  subscriptionId: string;
  sourceId: string;
  eventId: string;
  waitingId: string;
}

describe('operator views for a tenant client', () => {
  let t: TestApp;
  let admin: string;
  let a: Side;
  let b: Side;
  const get = (path: string, token: string, headers: Record<string, string> = {}) => request(t.app).get(path).set(headers).auth(token, { type: 'bearer' });

  async function side(tenant: string): Promise<Side> {
    const token = await t.token('system/*.cruds webhook', tenant);
    const c = client(t, token);
    const patient = await c.patient();
    const billId = `${tenant}-BILL`;
    const claim = await c.claim(patient, { billId });
    await c.claimResponse(claim.id, { total: 100.1, patientRef: patient });
    for (const [i, amount] of [[1, 10.1], [2, 10.1], [3, 90]] as const) {
      expect((await c.pay({ billId, paymentAmount: amount, paymentDate: '2024-01-15', paymentTraceId: `pi_${tenant}_${i}` })).status).toBe(200);
    }
    expect((await c.pay({ billId: `${tenant}-NOPE`, paymentAmount: 5, paymentTraceId: `pi_${tenant}_waiting` })).status).toBe(404);
    const subscriptionId = (await c.fhir.create(classicSubscription('PaymentReconciliation', 'https://example.org/hook'))).id;
    const source = await registerSource(t, admin, { tenant });
    const events = await get('/admin/inbound-events?limit=1', token);
    const waiting = await get('/admin/unmatched-payments', token);
    return { tenant, token, c, patient, claimId: claim.id, billId, subscriptionId, sourceId: source.id, eventId: events.body.items[0].id, waitingId: waiting.body.unmatchedPayments[0].id };
  }

  beforeAll(async () => {
    t = await startTestApp();
    admin = await t.token('system/*.cruds admin webhook');
    a = await side('tenant-a');
    b = await side('tenant-b');
  });
  afterAll(() => t?.close());

  it('sees its own journal, sources, deliveries, money, waiting payments and overview, through the admin routes', async () => {
    const journal = await get('/admin/inbound-events?limit=200', a.token);
    expect(journal.status).toBe(200);
    expect(journal.body.items.map((e: any) => e.status)).toEqual(['unmatched', 'processed', 'processed', 'processed']);
    expect((await get(`/admin/inbound-events/${a.eventId}`, a.token)).body.answer.status).toBe(404);
    expect((await get('/admin/webhook-sources', a.token)).body.sources.map((s: any) => s.id)).toEqual([a.sourceId]);
    const source = await get(`/admin/webhook-sources/${a.sourceId}`, a.token);
    expect(source.status).toBe(200);
    expect(source.body.credentials).toBeUndefined();
    expect((await get('/admin/subscriptions', a.token)).body.subscriptions.map((s: any) => s.id)).toEqual([a.subscriptionId]);
    expect((await get(`/admin/subscriptions/${a.subscriptionId}/notifications`, a.token)).status).toBe(200);
    expect((await get(`/admin/subscriptions/${a.subscriptionId}/health?hours=2`, a.token)).body.buckets).toHaveLength(2);
    expect((await get(`/admin/patient-payments?patient=${a.patient}`, a.token)).body.items).toHaveLength(3);
    expect((await get(`/admin/claims/${a.claimId}/timeline`, a.token)).body.entries.map((e: any) => [e.kind, e.amount])).toEqual([
      ['adjudication', '100.10'], ['payment', '10.10'], ['payment', '10.10'], ['payment', '79.90'],
    ]);
    const waiting = await get('/admin/unmatched-payments', a.token);
    expect(waiting.body.unmatchedPayments.map((u: any) => u.billId)).toEqual(['tenant-a-NOPE']);
    const overview = await get('/admin/overview?hours=1', a.token);
    expect(overview.body).toMatchObject({ waitingPayments: 1, inboundByStatus: { processed: 3, unmatched: 1 } });
    // Its own tenant by name is its own tenant.
    expect((await get('/admin/inbound-events?tenant=tenant-a', a.token)).status).toBe(200);
  });

  it('never sees another tenant\'s: 403 when it names one, 404 for its ids, nothing in its lists', async () => {
    for (const path of ['/admin/inbound-events', '/admin/subscriptions', '/admin/overview', '/admin/unmatched-payments', '/admin/webhook-sources', `/admin/patient-payments?patient=${b.patient}`, `/admin/patient-balance?patient=${b.patient}`]) {
      const res = await get(`${path}${path.includes('?') ? '&' : '?'}tenant=tenant-b`, a.token);
      expect(res.status, path).toBe(403);
      expect(res.body.error).toMatch(/own tenant \(tenant-a\)/);
    }
    expect((await get(`/admin/inbound-events/${b.eventId}`, a.token)).status).toBe(404);
    expect((await get(`/admin/webhook-sources/${b.sourceId}`, a.token)).status).toBe(404);
    expect((await get(`/admin/subscriptions/${b.subscriptionId}/notifications`, a.token)).status).toBe(404);
    expect((await get(`/admin/subscriptions/${b.subscriptionId}/health`, a.token)).status).toBe(404);
    const replay = await request(t.app).post(`/admin/subscriptions/${b.subscriptionId}/replay`).auth(a.token, { type: 'bearer' }).send({ fromEventNumber: 1 });
    expect(replay.status).toBe(404);
    expect((await get(`/admin/patient-payments?patient=${b.patient}`, a.token)).body.items).toEqual([]);
    expect((await get(`/admin/claims/${b.claimId}/timeline`, a.token)).body.entries).toEqual([]);
    expect((await get(`/admin/patient-balance?patient=${b.patient}`, a.token)).body).toMatchObject({ lifecycles: [], credits: [] });
    for (const action of ['apply', 'discard']) {
      const res = await request(t.app).post(`/admin/unmatched-payments/${b.waitingId}/${action}`).auth(a.token, { type: 'bearer' }).send({ reason: 'not mine' });
      expect(res.status, action).toBe(404);
    }
    expect((await get('/admin/unmatched-payments', b.token)).body.unmatchedPayments.map((u: any) => u.id)).toEqual([b.waitingId]);
    // Another tenant's sources cannot be changed (its own can: test/inbound/sources.test.ts); tenants are the operator's.
    expect((await request(t.app).post(`/admin/webhook-sources/${b.sourceId}/rotate-credentials`).auth(a.token, { type: 'bearer' })).status).toBe(404);
    expect((await request(t.app).delete(`/admin/webhook-sources/${b.sourceId}`).auth(a.token, { type: 'bearer' })).status).toBe(404);
    expect((await get('/admin/tenants', a.token)).status).toBe(403);
    // A client whose scopes do not cover a view: 403 for that view, the others still open.
    const deliveriesOnly = await t.token('system/Subscription.rs', 'tenant-a');
    expect((await get('/admin/subscriptions', deliveriesOnly)).status).toBe(200);
    expect((await get('/admin/inbound-events', deliveriesOnly)).status).toBe(403);
    expect((await get(`/admin/patient-balance?patient=${a.patient}`, deliveriesOnly)).status).toBe(403);
    await expectBooksBalanced(t, 'tenant-a');
  });

  it('an admin reads a tenant\'s FHIR data with X-Tenant; a tenant client may not name another tenant', async () => {
    const read = (token: string, ref: string, tenant?: string) => get(`/fhir/${ref}`, token, tenant ? { 'X-Tenant': tenant } : {});
    expect((await read(admin, b.patient)).status).toBe(404); // the admin's own tenant is `default`
    expect((await read(admin, b.patient, 'tenant-b')).status).toBe(200);
    const search = await get(`/fhir/Claim?patient=${b.patient}`, admin, { 'X-Tenant': 'tenant-b' });
    expect(search.body.entry.map((e: any) => e.resource.id)).toEqual([b.claimId]);
    // What the admin writes for a tenant is that tenant's.
    const created = await request(t.app).post('/fhir/Patient').set('X-Tenant', 'tenant-b').auth(admin, { type: 'bearer' }).send({ resourceType: 'Patient', name: [{ family: 'Acted-For' }] });
    expect(created.status).toBe(201);
    expect((await read(b.token, `Patient/${created.body.id}`)).status).toBe(200);
    expect((await read(a.token, `Patient/${created.body.id}`)).status).toBe(404);

    const refused = await read(a.token, b.patient, 'tenant-b');
    expect(refused.status).toBe(403);
    expect(refused.body.issue[0]).toMatchObject({ code: 'forbidden' });
    expect((await read(a.token, a.patient, 'tenant-a')).status).toBe(200);
    expect((await read(admin, b.patient, 'no-such-tenant')).status).toBe(404);
    const bad = await read(admin, b.patient, 'bad tenant!');
    expect(bad.status).toBe(400);
    expect(bad.body.resourceType).toBe('OperationOutcome');
  });

  it('states a patient\'s responsibility, paid, open and credit, as billing computed them, in decimal text', async () => {
    const res = await get(`/admin/patient-balance?patient=${a.patient}`, a.token);
    expect(res.status).toBe(200);
    // 100.10 owed; 10.10 + 10.10 + 90.00 paid: 79.90 of the last goes on the claim, 10.10 to credit.
    expect(res.body.totals).toEqual({ responsibility: '100.10', paid: '100.10', open: '0.00', credit: '10.10' });
    expect(res.body.lifecycles).toHaveLength(1);
    expect(res.body.lifecycles[0]).toMatchObject({ lifecycleId: a.claimId, responsibility: '100.10', paid: '100.10', open: '0.00' });
    expect(res.body.lifecycles[0].claims).toEqual([expect.objectContaining({ id: a.claimId, billIds: [a.billId] })]);
    expect(res.body.lifecycles[0].claimResponse).toMatch(/^ClaimResponse\//);
    expect(res.body.credits).toEqual([expect.objectContaining({ amount: '10.10', balance: '10.10' })]);
    // An unadjudicated claim: nothing owed yet, and what is paid waits as credit.
    const second = await a.c.claim(a.patient, { billId: 'tenant-a-SECOND' });
    const after = await get(`/admin/patient-balance?patient=${a.patient}`, a.token);
    expect(after.body.lifecycles.find((l: any) => l.lifecycleId === second.id)).toMatchObject({ responsibility: '0.00', paid: '0.00', open: '0.00' });
    expect(after.body.lifecycles.find((l: any) => l.lifecycleId === second.id).claimResponse).toBeUndefined();
    // The admin names the tenant; the CLI answers the same.
    expect((await get(`/admin/patient-balance?patient=${a.patient}&tenant=tenant-a`, admin)).body).toEqual(after.body);
    const cli = await runCommand(t.db, t.auth, ['payments', 'balance', '--tenant', 'tenant-a', '--patient', a.patient]);
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout!)).toEqual(after.body);
    expect((await get('/admin/patient-balance?patient=Claim/1', a.token)).status).toBe(400);
    expect((await get('/admin/patient-balance', a.token)).status).toBe(400);
  });
});
