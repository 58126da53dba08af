import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ClaimResponse, PaymentReconciliation } from '@medplum/fhirtypes';
import { runCommand } from '../../src/cli/commands.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';

/** The other ways an 835 comes in: a registered webhook source of kind x12-835, and the CLI; and a real public sample. */
let t: TestApp;
let c: Client;
const dir = mkdtempSync(join(tmpdir(), 'fhir-billing-835-'));
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token());
});
afterEach(() => expectBooksBalanced(t));
afterAll(async () => {
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/x12-835/${name}`, import.meta.url), 'latin1');

describe('a real public sample (eMedNY professional 835)', () => {
  it('three CLPs of one patient control number: three ClaimResponses, details summing to BPR02', async () => {
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef, { billId: 'PATIENT ACCOUNT NUMBER' });
    const res = await request(t.app).post('/api/remittances').auth(c.token, { type: 'bearer' }).set('Content-Type', 'text/plain').send(fixture('emedny-profee.835'));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.remittances).toEqual([expect.objectContaining({ traceNumber: '10100000000', payerId: '1000000000', paymentAmount: '45.75', claims: 3, applied: 3 })]);
    const responses = await c.fhir.search<ClaimResponse>(`ClaimResponse?request=Claim/${claim.id}`);
    expect(responses.map((r) => r.identifier?.[0].value).sort()).toEqual(['1000210000000030', '1000220000000020', '1000230000000020']);
    const denied = responses.find((r) => r.identifier?.[0].value === '1000220000000020')!;
    expect(denied.item?.map((i) => i.adjudication.find((a) => a.category.coding?.[0].code === 'CO')?.reason?.coding?.[0].code)).toEqual(['29', '29']);
    const [pr] = await c.fhir.search<PaymentReconciliation>('PaymentReconciliation?identifier=10100000000');
    expect(pr.detail?.map((d) => d.amount?.value)).toEqual([34.25, 0, 11.5]);
    expect(pr.paymentIssuer).toEqual({ display: 'NYSDOH' }); // N1*PR without an id: named only
  });
});

describe('several interchanges in one file', () => {
  it('each transaction set is its own remittance; one bad interchange refuses the whole file', async () => {
    const patientRef = await c.patient();
    await c.claim(patientRef, { billId: 'PCN-SINGLE-1' });
    await c.claim(patientRef, { billId: 'PCN-PLB-1' });
    const both = fixture('single-claim.835') + fixture('plb.835');
    const broken = fixture('single-claim.835') + fixture('plb.835').replace('SE*19*0001', 'SE*20*0001');
    const refused = await request(t.app).post('/api/remittances').auth(c.token, { type: 'bearer' }).send(broken);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatch(/^SE segment 50: SE01 says "20"/);
    expect(await c.fhir.search('PaymentReconciliation?identifier=EFT-SINGLE-1')).toEqual([]);
    const res = await request(t.app).post('/api/remittances').auth(c.token, { type: 'bearer' }).send(both);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.remittances.map((r: { traceNumber: string; applied: number }) => [r.traceNumber, r.applied])).toEqual([['EFT-SINGLE-1', 1], ['EFT-PLB-1', 1]]);
  });
});

describe('a webhook source of kind x12-835', () => {
  it('takes the file with its Basic credentials and refuses without them', async () => {
    const admin = await t.token('admin');
    const created = await request(t.app).post('/admin/webhook-sources').auth(admin, { type: 'bearer' }).send({ tenant: 'default', kind: 'x12-835', name: 'Clearinghouse' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ kind: 'x12-835', url: `/api/webhooks/x12-835/${created.body.id}`, auth: 'basic' });
    const { username, password } = created.body.credentials;
    const file = fixture('unknown-claim.835').replaceAll('EFT-UNKNOWN-1', 'EFT-SOURCE-1');
    const denied = await request(t.app).post(created.body.url).auth(username, 'wrong').send(file);
    expect(denied.status).toBe(401);
    const ok = await request(t.app).post(created.body.url).auth(username, password).set('Content-Type', 'application/edi-x12').send(file);
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expect(ok.body.remittances[0]).toMatchObject({ traceNumber: 'EFT-SOURCE-1', waiting: 1 });
    expect((await request(t.app).post('/api/webhooks/x12-835/nope').send(file)).status).toBe(404);
  });
});

describe('fhir-billing remittance import', () => {
  it('imports a file for a tenant with progress; again it is unchanged; a refused file is an {error}', async () => {
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef, { billId: 'PCN-PARTIAL-1' });
    const path = join(dir, 'partial.835');
    writeFileSync(path, fixture('partial-pay.835'));
    const lines: string[] = [];
    const first = await runCommand(t.db, t.auth, ['remittance', 'import', path, '--tenant', 'default'], (line) => lines.push(line));
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).remittances[0]).toMatchObject({ traceNumber: 'EFT-PARTIAL-1', status: 'created', applied: 1 });
    expect(lines.at(-1)).toMatch(/^1 claims, 100% of /);
    const again = await runCommand(t.db, t.auth, ['remittance', 'import', path, '--tenant', 'default']);
    expect(JSON.parse(again.stdout).remittances[0].status).toBe('unchanged');
    expect(await c.fhir.search(`ClaimResponse?request=Claim/${claim.id}`)).toHaveLength(1);

    writeFileSync(path, fixture('partial-pay.835').replace('BPR*I*600.00', 'BPR*I*601.00').replaceAll('EFT-PARTIAL-1', 'EFT-PARTIAL-2'));
    const refused = await runCommand(t.db, t.auth, ['remittance', 'import', path, '--tenant', 'default']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stderr).error).toMatch(/^SE segment 28: the payment does not balance: BPR02 601.00 .* \(difference 1.00\)$/);
    expect((await runCommand(t.db, t.auth, ['remittance', 'import', path, '--tenant', 'nobody'])).stderr).toMatch(/Unknown tenant: nobody/);
    expect((await runCommand(t.db, t.auth, ['remittance', 'import', '--tenant', 'default'])).code).toBe(2);
  });
});
