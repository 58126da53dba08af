import { createHmac, randomInt } from 'node:crypto';
import request from 'supertest';
import { expect } from 'vitest';
import { startTestApp } from './app.ts';
import type { TestApp } from './app.ts';
import { client } from './billing.ts';
import type { Client } from './billing.ts';

/** A claims-vetting or pre-authorization webhook source, registered through the admin API. */
export async function registerCuracelSource(t: TestApp, adminToken: string, kind: 'claims-vetting' | 'pre-authorization', body: Record<string, unknown> = {}) {
  const res = await request(t.app)
    .post('/admin/webhook-sources')
    .auth(adminToken, { type: 'bearer' })
    .send({ tenant: 'default', kind, name: kind === 'claims-vetting' ? 'Wayne HMO vetting' : 'PA decisions', ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; url: string; credentials?: { signingSecret: string } } & Record<string, unknown>;
}

export const sign = (secret: string, body: string | Buffer): string => createHmac('sha256', secret).update(body).digest('hex');

/** Posts `body` (exact bytes) signed with `secret`; `signature: null` leaves the header out. */
export function postSigned(t: TestApp, url: string, secret: string, body: string, signature?: string | null) {
  const req = request(t.app).post(url).set('Content-Type', 'application/json');
  const sig = signature === undefined ? sign(secret, body) : signature;
  return (sig === null ? req : req.set('x-curacel-signature', sig)).send(body);
}

/** What a Curacel test file starts with: the app, a client, an admin token and one registered source of `kind`. */
export async function startCuracel(kind: 'claims-vetting' | 'pre-authorization') {
  const t = await startTestApp();
  const c: Client = client(t, await t.token());
  const admin = await t.token('admin');
  const source = await registerCuracelSource(t, admin, kind);
  return { t, c, admin, url: source.url, secret: source.credentials!.signingSecret };
}

/** Posts a payload (an object as JSON, a string as its bytes) signed as the source's sender would (see postSigned). */
export const posterFor = (t: TestApp, url: string, secret: string) => (body: unknown, signature?: string | null) =>
  postSigned(t, url, secret, typeof body === 'string' ? body : JSON.stringify(body), signature);

export const platformId = (): number => randomInt(1, 2 ** 31);

/** claim.vetted in seed 001's shape: every value quoted, as the page shows it. */
export function claimVetted(o: { id?: number; pileId?: number; ref?: string | null; vettedAt?: string; enrolleeId?: number } = {}) {
  return {
    event: 'claim.vetted',
    data: {
      id: String(o.id ?? platformId()),
      pile_id: String(o.pileId ?? 77),
      ref: o.ref === undefined ? `CLM-${platformId()}` : o.ref,
      encounter_date: '2021-09-05T00:00:00.000000Z',
      provider: { id: '12', name: 'Lagos Clinic' },
      enrollee: { id: String(o.enrolleeId ?? platformId()), insurance_no: 'WHMO/2021/0042', first_name: 'Adaeze', last_name: 'Okafor', status: 'active', type: 'principal' },
      approved_amount: '4500.5',
      vetted_at: o.vettedAt ?? '2022-02-16T16:17:32.000000Z',
      status: 'PARTIALLY_APPROVED',
      approval_status: '1',
      diagnoses: [{ name: 'Typhoid fever', icd_code: 'A01' }],
      items: [
        { ref: 'it-1', description: 'Consultation', unit_price_billed: '2000', unit_price_approved: '2000', qty_billed: '1', qty_approved: '1', sub_total_billed: '2000', sub_total_approved: '2000', comments: [], status: '1' },
        { ref: 'it-2', description: 'Lab test / widal', unit_price_billed: '1500.25', unit_price_approved: '1250.25', qty_billed: '2', qty_approved: '2', sub_total_billed: '3000.5', sub_total_approved: '2500.5', comments: ['Tariff is 1250.25'], status: '1' },
      ],
    },
  };
}

/** claim.pile.vetting_done in seed 001's shape: numbers as numbers, enrollee_id, approval_status. */
export function pileDone(o: { id?: number; pileId?: number; ref?: string | null; vettedAt?: string; enrolleeId?: number; providerId?: number; itemApproval?: (0 | 1 | null)[] } = {}) {
  const approvals = o.itemApproval ?? [1, 0];
  return {
    event: 'claim.pile.vetting_done',
    data: {
      id: o.id ?? platformId(),
      pile_id: o.pileId ?? 88,
      ref: o.ref === undefined ? `CLM-${platformId()}` : o.ref,
      provider: { id: o.providerId ?? 12, name: 'Lagos Clinic', code: 'LC-001' },
      encounter_date: '2021-09-05T00:00:00.000000Z',
      enrollee_id: o.enrolleeId ?? platformId(),
      billed_amount: 5000,
      approved_amount: 2000,
      approval_status: 1,
      vetted_at: o.vettedAt ?? '2022-02-16T16:17:32.000000Z',
      diagnoses: [{ name: 'Malaria', icd_code: 'B54' }],
      items: [
        { ref: 'p-1', description: 'Consultation', unit_price_billed: 2000, unit_price_approved: 2000, qty_billed: 1, qty_approved: 1, sub_total_billed: 2000, sub_total_approved: 2000, comments: [], approval_status: approvals[0] },
        { ref: 'p-2', description: 'Injection', unit_price_billed: 1000, unit_price_approved: 0, qty_billed: 3, qty_approved: 0, sub_total_billed: 3000, sub_total_approved: 0, comments: ['Not covered', 'Refer to tariff'], approval_status: approvals[1] },
      ],
    },
  };
}

/** Seed 003's two example payloads, verbatim but for `ref` and `id_from_insurer`. */
export function paApproved(ref = `PA-REF-${platformId()}`, id = String(platformId())) {
  return {
    status: 'Approved', id_from_insurer: id, ref, pa_total_amount: 5000, pa_approved_amount: 4500, code: 'PA123456',
    created_at: '2024-07-29T12:34:56Z', opened_at: '2024-07-29T13:00:00Z', closed_at: '2024-07-29T14:00:00Z',
    diagnoses: { A01: 'Typhoid fever', B02: 'Zoster [herpes zoster]' }, services: ['Consultation', 'Lab Test'],
    hmo: { name: 'Wayne HMO', code: 'BruceW' }, enrollee_insurance_no: 'INS123456', enrollee_full_name: 'John Doe',
  };
}

export function paDeclined(ref = `PA-REF-${platformId()}`, id = String(platformId())) {
  return { ...paApproved(ref, id), status: 'Declined', pa_approved_amount: 0, code: null, reject_reason: 'Insufficient documentation provided' };
}

/** PHP's json_encode: `/` as `\/` and non-ASCII as \uXXXX, the bytes Curacel signs. */
export function phpJson(value: unknown): string {
  return JSON.stringify(value).replace(/\//g, '\\/').replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
