import { createHmac, randomBytes } from 'node:crypto';
import request from 'supertest';
import { expect } from 'vitest';
import type { TestApp } from './app.ts';

/** Registers a `tyro` webhook source through the admin API; a generated signing secret comes back once. */
export async function registerTyro(t: TestApp, adminToken: string, body: Record<string, unknown> = {}) {
  const res = await request(t.app)
    .post('/admin/webhook-sources')
    .auth(adminToken, { type: 'bearer' })
    .send({ tenant: 'default', kind: 'tyro', name: 'Tyro Health', ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; url: string; credentials?: { signingSecret?: string } } & Record<string, unknown>;
}

export const txnId = (): string => randomBytes(12).toString('hex');

export interface TxnOpts {
  id: string;
  invoiceReference: string;
  modified: string;
  businessStatus?: string;
  claimStatus?: string;
  /** Per item: [benefit, gap] in cents. */
  items?: [number, number][];
  extra?: Record<string, unknown>;
}

/** A transaction as the docs describe one (research §4 key attributes), amounts in cents with their strings. */
export function transaction(o: TxnOpts): Record<string, unknown> {
  const items = o.items ?? [[8000, 2000]];
  const money = (c: number) => `$${(c / 100).toFixed(2)}`;
  return {
    _id: o.id,
    invoiceReference: o.invoiceReference,
    businessStatus: o.businessStatus ?? 'outstanding',
    created: '2026-11-30T01:00:00.000Z',
    modified: o.modified,
    funder: 'medicare',
    patient: { firstName: 'Ann', lastName: 'Smith', dobString: '1980-04-02' },
    practice: { id: 'p1', fullName: 'Clinic' },
    claims: [
      {
        status: o.claimStatus ?? 'approved',
        statusDescription: 'Payment Approved',
        gatewayCode: '00',
        amountExpectedBenefit: items.reduce((s, [b]) => s + b, 0),
        amountExpectedBenefitString: money(items.reduce((s, [b]) => s + b, 0)),
        claimItems: items.map(([benefit, gap], i) => ({
          itemCode: `2300${i}`,
          status: o.claimStatus ?? 'approved',
          gatewayCode: '00',
          amountActualBenefit: benefit,
          amountActualBenefitString: money(benefit),
          amountGap: gap,
          amountGapString: money(gap),
        })),
      },
    ],
    ...o.extra,
  };
}

export const sign = (secret: string, timestamp: string, body: string): string => createHmac('sha256', secret).update(timestamp + body).digest('hex');

/** A signed POST of `{event, transaction}` (or any body text), as the sender makes one. */
export function postSigned(t: TestApp, url: string, secret: string, body: unknown, opts: { timestamp?: string; signature?: string; headers?: Record<string, string> } = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const timestamp = opts.timestamp ?? new Date().toISOString();
  let req = request(t.app)
    .post(url)
    .set('Content-Type', 'application/json')
    .set('X-Sender-Timestamp', timestamp)
    .set('X-Sender-Signature', opts.signature ?? sign(secret, timestamp, text));
  for (const [k, v] of Object.entries(opts.headers ?? {})) req = req.set(k, v);
  return req.send(text);
}
