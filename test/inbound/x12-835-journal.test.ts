import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim as claimFixture } from '../support/fixtures.ts';
import { client, expectBooksBalanced, serverRepo } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { big835 } from '../support/x12.ts';

/**
 * The journal of 835 files (inbound/x12-835/journal.ts), over HTTP on a real database: every
 * upload, through /api/remittances or a webhook source, has its inbound_event row: processed,
 * duplicate (every trace imported before), refused (400, 409, 422) with nothing else written; a
 * file's sha-256 and size always, its text up to 256 KiB, a summary, the first 1,000 resources.
 */
let t: TestApp;
let c: Client;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token('system/*.cruds'));
  admin = await t.token('admin');
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/x12-835/${name}`, import.meta.url), 'latin1');
const sha256 = (text: string): string => createHash('sha256').update(Buffer.from(text, 'latin1')).digest('hex');
const post = (body: string) => request(t.app).post('/api/remittances').auth(c.token, { type: 'bearer' }).set('Content-Type', 'application/edi-x12').send(body);
const journal = async (query: Record<string, string>) => {
  const res = await request(t.app).get('/admin/inbound-events').query({ source: 'x12-835', ...query }).auth(admin, { type: 'bearer' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.items as { id: string; status: string; answerStatus: number; sourceId: string | null; eventType: string }[];
};
const detail = async (id: string) => {
  const res = await request(t.app).get(`/admin/inbound-events/${id}`).auth(admin, { type: 'bearer' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
};
const newest = async () => detail((await journal({ limit: '1' }))[0].id);

describe('an 835 upload is journalled', () => {
  it('processed with its summary, raw text, headers and resources; the same file again is a duplicate of it', async () => {
    const patientRef = await c.patient();
    await c.claim(patientRef, { billId: 'PCN-SINGLE-1' });
    const file = fixture('single-claim.835');
    const res = await post(file).set('User-Agent', 'clearinghouse/1.0');
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const e = await newest();
    expect(e).toMatchObject({
      source: 'x12-835', eventType: 'remittance', status: 'processed', answerStatus: 201, dedupeKey: sha256(file), sourceId: null,
      contentType: 'application/edi-x12', rawBody: file, rawTruncated: false, rawBytes: Buffer.byteLength(file, 'latin1'),
      answer: { status: 201, body: res.body },
    });
    expect(e.body).toEqual({
      file: { bytes: Buffer.byteLength(file, 'latin1'), sha256: sha256(file), rawKeptBytes: Buffer.byteLength(file, 'latin1'), truncated: false },
      interchanges: ['000000101'], groups: ['101'],
      remittanceCount: 1,
      remittances: [expect.objectContaining({ traceNumber: 'EFT-SINGLE-1', status: 'created', paymentAmount: '150.00', claims: 1, applied: 1, waiting: 0 })],
      claims: 1, totalPaid: '150.00', currency: 'USD',
      resources: { listed: e.resources.length, total: e.resources.length },
    });
    expect(e.headers).toMatchObject({ 'content-type': 'application/edi-x12', 'user-agent': 'clearinghouse/1.0' });
    expect(e.headers).not.toHaveProperty('authorization');
    const pr = res.body.remittances[0].paymentReconciliationId;
    expect(e.resources).toContain(`PaymentReconciliation/${pr}`);
    expect(e.resources.some((r: string) => r.startsWith('ClaimResponse/'))).toBe(true);
    expect(e.resourcesTotal).toBe(e.resources.length);

    const again = await post(file);
    expect(again.status).toBe(200);
    const dup = await newest();
    expect(dup).toMatchObject({ status: 'duplicate', answerStatus: 200, duplicateOf: e.id, resources: [], resourcesTotal: 0 });
    expect(dup.body).toMatchObject({ remittances: [expect.objectContaining({ status: 'unchanged' })], claims: 1, totalPaid: '150.00' });
    expect(await journal({ status: 'duplicate' })).toEqual(expect.arrayContaining([expect.objectContaining({ id: dup.id })]));
  });

  it('refused (400, 422, 409): its row alone, with the error, and nothing else written', async () => {
    const broken = fixture('plb.835').replace('SE*19*0001', 'SE*20*0001');
    const res = await post(broken);
    expect(res.status).toBe(400);
    const e = await newest();
    expect(e).toMatchObject({ status: 'refused', answerStatus: 400, error: res.body.error, resources: [], rawBody: broken, answer: { status: 400, body: res.body } });
    expect(e.body).toMatchObject({ file: { sha256: sha256(broken) }, error: res.body.error, interchanges: [expect.any(String)] });
    expect(await c.fhir.search('PaymentReconciliation?identifier=EFT-PLB-1')).toEqual([]);

    const unbalanced = fixture('single-claim.835').replace('BPR*I*150.00', 'BPR*I*151.00').replace('EFT-SINGLE-1', 'EFT-UNBALANCED-1');
    expect((await post(unbalanced)).status).toBe(422);
    expect(await newest()).toMatchObject({ status: 'refused', answerStatus: 422, error: expect.stringMatching(/does not balance/) });

    const conflict = fixture('single-claim.835').replace('DTM*405*20240509', 'DTM*405*20240508');
    expect((await post(conflict)).status).toBe(409);
    expect(await newest()).toMatchObject({ status: 'refused', answerStatus: 409, error: expect.stringMatching(/imported before with other content/) });
  });

  it('through a webhook source: the row names the source, and the journal filters by it', async () => {
    const created = await request(t.app).post('/admin/webhook-sources').auth(admin, { type: 'bearer' }).send({ tenant: 'default', kind: 'x12-835', name: 'Clearinghouse' });
    expect(created.status).toBe(201);
    const { id, url, credentials } = created.body;
    const patientRef = await c.patient();
    await c.claim(patientRef, { billId: 'PCN-DENIAL-1' });
    const res = await request(t.app).post(url).auth(credentials.username, credentials.password).send(fixture('denial.835'));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const rows = await journal({ sourceId: id });
    expect(rows).toEqual([expect.objectContaining({ sourceId: id, status: 'processed', answerStatus: 201 })]);
    expect((await detail(rows[0].id)).headers).not.toHaveProperty('authorization');
  });
});

describe('a large 835', () => {
  it('keeps the first 256 KiB of its text (marked truncated), its sha-256 and size, and the first 1,000 resources with the count of the rest', async () => {
    const repo = serverRepo(t);
    const patientRef = await c.patient();
    const prefix = 'BIG';
    for (let i = 0; i < 1100; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => repo.createResource(claimFixture(patientRef, `${prefix}-${i + k}`))));
    }
    const file = big835(prefix, 1100, 500);
    expect(file.length).toBeGreaterThan(256 * 1024);
    const res = await post(file);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.remittances[0]).toMatchObject({ claims: 1600, applied: 1100, waiting: 500 });
    const e = await newest();
    expect(e).toMatchObject({ status: 'processed', rawTruncated: true, rawBytes: file.length, dedupeKey: sha256(file) });
    expect(e.rawBody).toBe(file.slice(0, 256 * 1024));
    expect(e.body.file).toEqual({ bytes: file.length, sha256: sha256(file), rawKeptBytes: 256 * 1024, truncated: true });
    expect(e.body).toMatchObject({ claims: 1600, totalPaid: (150 * 1600).toFixed(2), currency: 'USD' });
    expect(e.resources).toHaveLength(1000);
    expect(new Set(e.resources).size).toBe(1000);
    // 1,100 ClaimResponses and the PaymentReconciliation.
    expect(e.resourcesTotal).toBe(1101);
    expect(e.body.resources).toEqual({ listed: 1000, total: e.resourcesTotal });
  }, 120_000);
});
