import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import { classicSubscription } from '../support/subscriptions.ts';
import { startTestWorker } from '../support/worker.ts';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import { runCommand } from '../../src/cli/commands.ts';

/** The operator APIs under /admin that the console reads (src/ops/), on the real HTTP surface. */
describe('operator APIs', () => {
  let t: TestApp;
  let admin: string;
  let c: Client;
  let patient: string;
  let claimId: string;
  let receiver: Receiver;
  let worker: DeliveryWorker;
  let subscriptionId: string;
  const get = (path: string, token = admin) => request(t.app).get(path).auth(token, { type: 'bearer' });
  const post = (path: string, body: object, token = admin) => request(t.app).post(path).auth(token, { type: 'bearer' }).send(body);

  beforeAll(async () => {
    t = await startTestApp({ allowPrivateNetworks: true });
    admin = await t.token('system/*.cruds admin webhook');
    c = client(t, admin);
    receiver = await startReceiver();
    worker = await startTestWorker(t.db, { retrySchedule: [20] });
    subscriptionId = (await c.fhir.create(classicSubscription('PaymentReconciliation', `${receiver.url}/hook`))).id;
    patient = await c.patient();
    const claim = await c.claim(patient, { billId: 'OPS-1' });
    claimId = claim.id;
    await c.claimResponse(claimId, { total: 100, patientRef: patient });
    for (let i = 1; i <= 3; i++) {
      const res = await c.pay({ billId: 'OPS-1', paymentAmount: 10.1, paymentDate: '2024-01-15', paymentTraceId: `pi_ops_${i}` });
      expect(res.status).toBe(200);
    }
    // Eight duplicates: twelve events in all, so ids of two digits page in numeric order.
    for (let i = 0; i < 8; i++) await c.pay({ billId: 'OPS-1', paymentAmount: 10.1, paymentDate: '2024-01-15', paymentTraceId: 'pi_ops_1' });
    expect((await c.pay({ billId: 'NOPE-1', paymentAmount: 5, paymentTraceId: 'pi_ops_waiting' })).status).toBe(404);
    await receiver.waitFor(3);
  });
  afterAll(async () => {
    await worker?.stop();
    await receiver?.close();
    await t?.close();
  });

  it('pages the journal newest first with filters, and shows one message whole', async () => {
    const first = await get('/admin/inbound-events?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.items.map((e: any) => e.status)).toEqual(['unmatched', 'duplicate']);
    expect(first.body.next).toBeDefined();
    const second = await get(`/admin/inbound-events?limit=2&before=${first.body.next}`);
    expect(second.body.items).toHaveLength(2);
    expect(Number(second.body.items[0].id)).toBeLessThan(Number(first.body.items[1].id));
    const all = await get('/admin/inbound-events?limit=200');
    expect(all.body.items).toHaveLength(12);
    const ids = all.body.items.map((e: any) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    // Paging by `next` walks the same order, numerically.
    const walked: number[] = [];
    for (let next: string | undefined = undefined, n = 0; n < 10; n++) {
      const p = await get(`/admin/inbound-events?limit=5${next ? `&before=${next}` : ''}`);
      walked.push(...p.body.items.map((e: any) => Number(e.id)));
      next = p.body.next;
      if (!next) break;
    }
    expect(walked).toEqual(ids);
    expect(all.body.next).toBeUndefined();
    const processed = await get('/admin/inbound-events?status=processed&source=cair');
    expect(processed.body.items).toHaveLength(3);
    expect((await get(`/admin/inbound-events?since=${new Date(Date.now() + 60_000).toISOString()}`)).body.items).toEqual([]);

    const detail = await get(`/admin/inbound-events/${processed.body.items[2].id}`);
    expect(detail.status).toBe(200);
    expect(detail.body.answer.status).toBe(200);
    expect(JSON.parse(detail.body.rawBody ?? JSON.stringify(detail.body.body)).paymentTraceId).toBe('pi_ops_1');
    expect(detail.body.resources).toContain(`Claim/${claimId}`);
    expect(detail.body.resources.some((r: string) => r.startsWith('PaymentReconciliation/'))).toBe(true);
  });

  it('refuses bad filters with 400 and unknown or other tenants\' ids with 404', async () => {
    for (const q of ['status=lost', 'limit=0', 'limit=201', 'before=abc', 'since=yesterday', 'tenant=a%20b']) {
      const res = await get(`/admin/inbound-events?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error).toMatch(/Invalid request/);
    }
    expect((await get('/admin/inbound-events/999999')).status).toBe(404);
    expect((await get('/admin/inbound-events/x;drop')).status).toBe(404);
    const other = await t.token('system/*.cruds admin', 'other-ops');
    const own = await get('/admin/inbound-events', other);
    expect(own.body.items).toEqual([]);
    const first = (await get('/admin/inbound-events')).body.items[0].id;
    expect((await get(`/admin/inbound-events/${first}`, other)).status).toBe(404);
    expect((await get(`/admin/subscriptions/${subscriptionId}/notifications`, other)).status).toBe(404);
    // Without the admin scope, a client whose scopes do not cover the view: 403 (tenant-access.test.ts has the rest).
    const narrow = await t.token('system/Claim.rs');
    expect((await get('/admin/inbound-events', narrow)).status).toBe(403);
    expect((await get('/admin/overview', narrow)).status).toBe(403);
  });

  it('lists subscriptions with their notifications, attempts and health, and replays from an event number', async () => {
    const subs = await get('/admin/subscriptions');
    const sub = subs.body.subscriptions.find((s: any) => s.id === subscriptionId);
    expect(sub).toMatchObject({ status: 'active', resourceType: 'PaymentReconciliation', endpoint: `${receiver.url}/hook`, eventsCount: 3, dead: 0, statusError: null });
    const page = await get(`/admin/subscriptions/${subscriptionId}/notifications?limit=2`);
    expect(page.body.items.map((n: any) => n.eventNumber)).toEqual([3, 2]);
    expect(page.body.items[0].attempts[0]).toMatchObject({ httpStatus: 200 });
    const rest = await get(`/admin/subscriptions/${subscriptionId}/notifications?limit=2&before=${page.body.next}`);
    expect(rest.body.items.map((n: any) => n.eventNumber)).toEqual([1]);
    const health = await get(`/admin/subscriptions/${subscriptionId}/health?hours=3`);
    expect(health.body.buckets).toHaveLength(3);
    expect(health.body.buckets.slice(0, 2).map((b: any) => [b.attempts, b.medianLatencyMs])).toEqual([[0, null], [0, null]]);
    expect(health.body.buckets[2]).toMatchObject({ attempts: 3, succeeded: 3 });

    const before = receiver.received.length;
    const replay = await post(`/admin/subscriptions/${subscriptionId}/replay`, { fromEventNumber: 2 });
    expect(replay.body).toEqual({ subscriptionId, fromEventNumber: 2, requeued: 2 });
    await receiver.waitFor(before + 2);
    expect((await post(`/admin/subscriptions/${subscriptionId}/replay`, { fromEventNumber: 0 })).status).toBe(400);
    expect((await post(`/admin/subscriptions/${subscriptionId}/replay`, { fromEventNumber: 1, extra: 1 })).status).toBe(400);
    expect((await post('/admin/subscriptions/nope/replay', { fromEventNumber: 1 })).status).toBe(404);
  });

  it('shows a patient\'s payments in decimal text, a claim\'s timeline and the overview', async () => {
    const payments = await get(`/admin/patient-payments?patient=${patient}`);
    expect(payments.body.items).toHaveLength(3);
    expect(payments.body.items[0]).toMatchObject({ amount: '10.10', appliedAmount: '10.10', creditedAmount: '0.00', reversedAmount: '0.00', claimId });
    expect((await get('/admin/patient-payments?patient=Bob')).status).toBe(400);
    const byClaim = await get(`/admin/patient-payments?claim=${claimId}&limit=1`);
    expect(byClaim.body.items).toHaveLength(1);
    expect(byClaim.body.next).toBe(1);

    const timeline = await get(`/admin/claims/${claimId}/timeline`);
    // The ClaimResponse with the responsibility it states (billing's reading, not the browser's), then the money.
    expect(timeline.body.entries.map((e: any) => [e.kind, e.amount])).toEqual([['adjudication', '100.00'], ['payment', '10.10'], ['payment', '10.10'], ['payment', '10.10']]);
    expect(timeline.body.entries[0].reference).toMatch(/^ClaimResponse\//);
    expect(timeline.body.currency).toBe('USD');

    const o = await get('/admin/overview?hours=2');
    expect(o.body.hours).toHaveLength(2);
    expect(o.body.hours.reduce((n: number, h: any) => n + h.messagesIn, 0)).toBe(12);
    expect(o.body.hours.reduce((n: number, h: any) => n + h.notificationsOut, 0)).toBeGreaterThanOrEqual(3);
    expect(o.body.inboundByStatus).toMatchObject({ processed: 3, duplicate: 8, unmatched: 1 });
    expect(o.body.waitingPayments).toBe(1);
    expect(o.body.oldestWaitingPayment).toMatchObject({ billId: 'NOPE-1', amount: '5.00', currency: 'USD' });
    expect(o.body.currency).toBe('USD');
    expect((await get('/admin/overview?hours=0')).status).toBe(400);
  });

  it('answers the same from the command line', async () => {
    const cli = async (...args: string[]) => {
      const r = await runCommand(t.db, t.auth, args);
      return { code: r.code, out: r.stdout ? JSON.parse(r.stdout) : undefined, err: r.stderr };
    };
    const tenant = ['--tenant', 'default'];
    const journal = await cli('journal', 'list', ...tenant, '--status', 'processed', '--limit', '2');
    expect(journal.code).toBe(0);
    expect(journal.out.items).toHaveLength(2);
    const rest = await cli('journal', 'list', ...tenant, '--status', 'processed', '--before', journal.out.next);
    expect(rest.out.items).toHaveLength(1);
    expect((await cli('journal', 'show', ...tenant, rest.out.items[0].id)).out.answer.status).toBe(200);
    expect((await cli('journal', 'show', ...tenant, '999999')).code).toBe(1);
    expect((await cli('journal', 'list', ...tenant, '--status', 'lost')).code).toBe(2);
    expect((await cli('journal', 'list', ...tenant, '--limit', 'ten')).code).toBe(2);
    expect((await cli('deliveries', 'list', ...tenant)).out.subscriptions.map((x: any) => x.id)).toContain(subscriptionId);
    const notes = await cli('deliveries', 'notifications', ...tenant, subscriptionId, '--limit', '1');
    expect(notes.out.items[0].attempts.length).toBeGreaterThan(0);
    expect((await cli('deliveries', 'replay', ...tenant, subscriptionId)).code).toBe(2);
    expect((await cli('deliveries', 'replay', '--tenant', 'other-ops', subscriptionId, '--from', '1')).code).toBe(1);
    expect((await cli('payments', 'list', ...tenant, '--patient', patient)).out.items).toHaveLength(3);
    expect((await cli('payments', 'timeline', ...tenant, claimId)).out.entries).toHaveLength(4);
    expect((await cli('overview', ...tenant, '--hours', '1')).out.waitingPayments).toBe(1);
  });
});

/** Every amount the console shows comes with its currency: the tenant's book currency, or FHIR Money's. */
describe('amounts carry their currency', () => {
  let t: TestApp;
  let admin: string;
  let aud: Client;
  const get = (path: string, token = admin) => request(t.app).get(path).auth(token, { type: 'bearer' });

  beforeAll(async () => {
    t = await startTestApp();
    admin = await t.token('admin');
    const created = await request(t.app).post('/admin/tenants').auth(admin, { type: 'bearer' }).send({ id: 'ops-aud', name: 'Sydney', currency: 'AUD' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    aud = client(t, await t.token('system/*.cruds webhook', 'ops-aud'));
  });
  afterAll(() => t.close());

  it('in an AUD tenant: balance, payments, timeline, waiting payments and the overview say AUD; the default tenant still USD', async () => {
    const patient = await aud.patient();
    const claim = await aud.claim(patient, { billId: 'AUD-1' });
    await aud.claimResponse(claim.id, { total: 80, patientRef: patient, currency: 'AUD' });
    expect((await aud.pay({ billId: 'AUD-1', paymentAmount: 25.5, currency: 'AUD', paymentTraceId: 'pi_aud_1' })).status).toBe(200);
    expect((await aud.pay({ billId: 'AUD-NOT-HERE', paymentAmount: 7, currency: 'AUD', paymentTraceId: 'pi_aud_2' })).status).toBe(404);

    const balance = await get(`/admin/patient-balance?tenant=ops-aud&patient=${patient}`);
    expect(balance.body).toMatchObject({ currency: 'AUD', totals: { responsibility: '80.00', paid: '25.50', open: '54.50' } });
    expect((await get(`/admin/patient-payments?tenant=ops-aud&patient=${patient}`)).body.items).toEqual([expect.objectContaining({ amount: '25.50', currency: 'AUD' })]);
    const timeline = await get(`/admin/claims/${claim.id}/timeline?tenant=ops-aud`);
    expect(timeline.body).toMatchObject({ currency: 'AUD', entries: [expect.objectContaining({ kind: 'adjudication', amount: '80.00' }), expect.objectContaining({ kind: 'payment', amount: '25.50' })] });
    const waiting = await get('/admin/unmatched-payments?tenant=ops-aud');
    expect(waiting.body.unmatchedPayments).toEqual([expect.objectContaining({ billId: 'AUD-NOT-HERE', amount: 7, currency: 'AUD' })]);
    // The tenant's own client reads the same.
    expect((await get('/admin/overview?hours=1', aud.token)).body).toMatchObject({ currency: 'AUD', oldestWaitingPayment: { billId: 'AUD-NOT-HERE', amount: '7.00', currency: 'AUD' } });
    // An operator listing every tenant's waiting payments sees each in its own tenant's currency.
    const usd = client(t, await t.token('system/*.cruds webhook'));
    expect((await usd.pay({ billId: 'USD-NOT-HERE', paymentAmount: 3, paymentTraceId: 'pi_usd_1' })).status).toBe(404);
    const all = (await get('/admin/unmatched-payments')).body.unmatchedPayments.map((u: { billId: string; currency: string }) => [u.billId, u.currency]);
    expect(all).toEqual(expect.arrayContaining([['AUD-NOT-HERE', 'AUD'], ['USD-NOT-HERE', 'USD']]));
    expect((await get('/admin/overview?hours=1')).body.currency).toBe('USD');
  });
});
