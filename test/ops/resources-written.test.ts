import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { post as postInstaMed, registerSource, sale } from '../support/instamed.ts';
import { postSigned as postTyro, registerTyro, transaction, txnId } from '../support/tyro.ts';
import { claimVetted, paApproved, postSigned as postCuracel, registerCuracelSource } from '../support/curacel.ts';

/**
 * A message's "resources written" (GET /admin/inbound-events/:id) is every resource its transaction
 * wrote, for each sender that journals: compared with the outbox, which has one row per write.
 */
describe('resources a message wrote', () => {
  let t: TestApp;
  let admin: string;
  let c: Client;
  beforeAll(async () => {
    t = await startTestApp();
    admin = await t.token('system/*.cruds admin webhook');
    c = client(t, admin);
  });
  afterAll(() => t?.close());

  /** Runs `send`; returns what the outbox says was written meanwhile and the journal's newest event of `source`. */
  async function written(source: string, send: () => Promise<{ status: number }>) {
    const [{ seq }] = await t.db.query<{ seq: string }>(`SELECT coalesce(max(seq), 0)::text AS seq FROM outbox`);
    const res = await send();
    expect(res.status, JSON.stringify(res)).toBeLessThan(300);
    const rows = await t.db.query<{ ref: string }>(
      `SELECT DISTINCT resource_type || '/' || resource_id AS ref FROM outbox WHERE tenant_id = 'default' AND seq > $1`,
      [seq],
    );
    const events = await request(t.app).get(`/admin/inbound-events?source=${source}&limit=1`).auth(admin, { type: 'bearer' });
    const event = await request(t.app).get(`/admin/inbound-events/${events.body.items[0].id}`).auth(admin, { type: 'bearer' });
    expect(event.status).toBe(200);
    await expectBooksBalanced(t);
    return { outbox: rows.map((r) => r.ref).sort(), resources: event.body.resources as string[] };
  }

  it('cair: the PaymentReconciliation, the Claim it paid and the PatientCredit of its excess', async () => {
    const claim = await c.claim(await c.patient(), { billId: `W-${randomUUID().slice(0, 8)}` });
    await c.claimResponse(claim.id, { total: 10, patientRef: claim.patient.reference! });
    const w = await written('cair', () => c.pay({ billId: claim.billId, paymentAmount: 25, paymentTraceId: `pi_${randomUUID()}` }));
    expect(w.resources.sort()).toEqual(w.outbox);
    expect(w.resources.map((r) => r.split('/')[0]).sort()).toEqual(['Claim', 'PatientCredit', 'PaymentReconciliation']);
  });

  it('instamed: everything the sale wrote, though its answer is plain text naming no id', async () => {
    const source = await registerSource(t, admin);
    const claim = await c.claim(await c.patient(), { billId: `IM-${randomUUID().slice(0, 8)}` });
    const w = await written('instamed', () => postInstaMed(t, source.url, source.credentials!, sale(randomUUID().replace(/-/g, ''), claim.billId, '12.50')));
    expect(w.outbox.length).toBeGreaterThan(0);
    expect(w.resources.sort()).toEqual(w.outbox);
    expect(w.resources).toContain(`Claim/${claim.id}`);
    expect(w.resources.some((r) => r.startsWith('PaymentReconciliation/'))).toBe(true);
  });

  it('tyro: the ClaimResponse and what else the approval wrote', async () => {
    const source = await registerTyro(t, admin);
    const claim = await c.claim(await c.patient(), { billId: `inv-${randomUUID().slice(0, 8)}` });
    const body = { event: 'healthFundApprovedInvoice', transaction: transaction({ id: txnId(), invoiceReference: claim.billId, modified: '2026-12-01T10:00:00.000Z' }) };
    const w = await written('tyro', () => postTyro(t, source.url, source.credentials!.signingSecret!, body));
    expect(w.resources.sort()).toEqual(w.outbox);
    expect(w.resources.some((r) => r.startsWith('ClaimResponse/'))).toBe(true);
  });

  it('curacel: a claim.vetted for an unknown claim lists the Claim, Patient, Coverage, Organization and ClaimResponse it created', async () => {
    const source = await registerCuracelSource(t, admin, 'claims-vetting');
    const w = await written('claims-vetting', () => postCuracel(t, source.url, source.credentials!.signingSecret, JSON.stringify(claimVetted())));
    expect(w.resources.sort()).toEqual(w.outbox);
    expect(new Set(w.resources.map((r) => r.split('/')[0]))).toEqual(new Set(w.outbox.map((r) => r.split('/')[0])));
    expect(w.resources.some((r) => r.startsWith('ClaimResponse/'))).toBe(true);
    expect(w.resources.some((r) => r.startsWith('Patient/'))).toBe(true);
  });

  it('curacel pre-authorization: the Claim and ClaimResponse of the decision', async () => {
    const source = await registerCuracelSource(t, admin, 'pre-authorization');
    const w = await written('pre-authorization', () => postCuracel(t, source.url, source.credentials!.signingSecret, JSON.stringify(paApproved())));
    expect(w.resources.sort()).toEqual(w.outbox);
    expect(w.resources.some((r) => r.startsWith('ClaimResponse/'))).toBe(true);
  });

  it('a duplicate wrote nothing, and says so', async () => {
    const claim = await c.claim(await c.patient(), { billId: `D-${randomUUID().slice(0, 8)}` });
    const pay = { billId: claim.billId, paymentAmount: 5, paymentTraceId: `pi_${randomUUID()}` };
    await c.pay(pay);
    const w = await written('cair', () => c.pay(pay));
    expect(w.outbox).toEqual([]);
    expect(w.resources).toEqual([]);
  });
});
