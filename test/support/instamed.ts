import request from 'supertest';
import { expect } from 'vitest';
import type { TestApp } from './app.ts';

/** Registers an InstaMed webhook source through the admin API; Basic credentials come back once. */
export async function registerSource(t: TestApp, adminToken: string, body: Record<string, unknown> = {}) {
  const res = await request(t.app)
    .post('/admin/webhook-sources')
    .auth(adminToken, { type: 'bearer' })
    .send({ tenant: 'default', kind: 'instamed', name: 'InstaMed', ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; url: string; tenant: string; credentials?: { username: string; password: string } } & Record<string, unknown>;
}

export type Fields = Record<string, string | null>;
export type Format = 'json' | 'xml' | 'nvp';
export const FORMATS: Format[] = ['json', 'xml', 'nvp'];

const xmlEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A message in one of the sender's three formats: PascalCase JSON and XML, camelCase NVP. */
export function encode(fields: Fields, format: Format): { type: string; body: string } {
  if (format === 'json') return { type: 'application/json', body: JSON.stringify(fields) };
  if (format === 'xml') {
    const children = Object.entries(fields).map(([k, v]) => (v === null ? `<${k}/>` : `<${k}>${xmlEscape(v)}</${k}>`)).join('');
    return { type: 'application/xml', body: `<?xml version="1.0" encoding="utf-8"?><Transaction>${children}</Transaction>` };
  }
  const camel = (k: string): string => k.charAt(0).toLowerCase() + k.slice(1);
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== null) params.append(camel(k), v);
  return { type: 'application/x-www-form-urlencoded', body: params.toString() };
}

/** An approved card sale as the sender posts it (research §1's sample, trimmed). */
export function sale(transactionId: string, billId: string, amount: string, extra: Fields = {}): Fields {
  return {
    ResponseDateTime: '12/14/2017 11:58:06 PM',
    PaymentTransactionID: transactionId,
    OriginalTransactionID: transactionId,
    TransactionAction: 'Sale',
    TransactionType: 'CreditCard',
    CardLastFourDigits: '************1111',
    CardType: 'VISA',
    AuthorizationCode: '9B5A7F',
    CurrentTransactionStatusCode: 'C',
    CurrentTransactionStatusDescription: 'Approved',
    Amount: amount,
    RequestAmount: amount,
    IsPartiallyApproved: 'false',
    PartialApprovalAmount: null,
    AdditionalCode1: billId,
    PaymentPlanID: null,
    ...extra,
  };
}

export function voidOf(transactionId: string, billId: string, amount: string): Fields {
  return sale(transactionId, billId, amount, { CurrentTransactionStatusCode: 'V', CurrentTransactionStatusDescription: 'Voided' });
}

/** A refund, return or chargeback: a new id naming the original. */
export function reversalOf(kind: 'refund' | 'return' | 'chargeback', transactionId: string, originalId: string, billId: string, amount: string): Fields {
  const status = { refund: ['C', 'Refunded', 'Refund'], return: ['RI', 'Returned', 'Return'], chargeback: ['CB', 'Chargeback', 'Sale'] }[kind];
  return sale(transactionId, billId, amount, {
    OriginalTransactionID: originalId,
    CurrentTransactionStatusCode: status[0],
    CurrentTransactionStatusDescription: status[1],
    TransactionAction: status[2],
  });
}

export function post(t: TestApp, url: string, auth: { username: string; password: string } | string, fields: Fields | string, format: Format = 'json', type?: string) {
  const encoded = typeof fields === 'string' ? { type: type ?? 'application/json', body: fields } : encode(fields, format);
  const req = request(t.app).post(url).set('Content-Type', type ?? encoded.type);
  const authed = typeof auth === 'string' ? req.auth(auth, { type: 'bearer' }) : req.auth(auth.username, auth.password);
  return authed.send(encoded.body);
}
