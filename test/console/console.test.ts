import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, serverRepo } from '../support/billing.ts';
import { claim as claimFixture } from '../support/fixtures.ts';
import { big835 } from '../support/x12.ts';
import type { Client } from '../support/billing.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import { classicSubscription } from '../support/subscriptions.ts';
import { startTestWorker } from '../support/worker.ts';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import { join } from 'node:path';
import { openBrowser } from './browser.ts';
import type { Browser } from './browser.ts';

/**
 * The console as an operator uses it, in Debian's Chromium against a real server, database,
 * delivery worker and subscriber. Each step that fails leaves a screenshot in test-results/console/.
 */
describe('operations console in a browser', () => {
  let t: TestApp;
  let server: Server;
  let base: string;
  let c: Client;
  let receiver: Receiver;
  let worker: DeliveryWorker;
  let b: Browser;
  let patientId: string;
  let subscriptionId: string;
  let beaSubscription: string;
  let clinicB: { clientId: string; clientSecret: string };

  beforeAll(async () => {
    t = await startTestApp({ allowPrivateNetworks: true });
    server = createServer(t.app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    c = client(t, await t.token('system/*.cruds webhook admin'));
    receiver = await startReceiver();
    worker = await startTestWorker(t.db, { retrySchedule: [100, 100] });
    subscriptionId = (await c.fhir.create(classicSubscription('PaymentReconciliation', `${receiver.url}/billing-hook`))).id;
    const patient = await c.fhir.create({ resourceType: 'Patient', name: [{ family: 'Okafor', given: ['Ada'] }], birthDate: '1980-02-01' });
    patientId = patient.id;
    const claim = await c.claim(`Patient/${patientId}`, { billId: 'CON-1' });
    await c.claimResponse(claim.id, { total: 100, patientRef: `Patient/${patientId}` });
    // A payer's 835 for 1,001 claims of another patient (and 600 not here yet): over 256 KiB, over 1,000 resources.
    const batch = `Patient/${(await c.fhir.create({ resourceType: 'Patient', name: [{ family: 'Batch', given: ['Remy'] }] })).id}`;
    const repo = serverRepo(t);
    for (let i = 0; i < 1001; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, 1001 - i) }, (_, k) => repo.createResource(claimFixture(batch, `ERA-${i + k}`))));
    }
    // A second tenant whose books are in AUD, with its own patient, payment, subscription and a client with a secret.
    const tenant = await request(t.app).post('/admin/tenants').auth(c.token, { type: 'bearer' }).send({ id: 'clinic-b', name: 'Clinic B', currency: 'AUD' });
    expect(tenant.status, JSON.stringify(tenant.body)).toBe(201);
    const other = client(t, await t.token('system/*.cruds webhook', 'clinic-b'));
    const bea = await other.fhir.create({ resourceType: 'Patient', name: [{ family: 'Bauer', given: ['Bea'] }], birthDate: '1975-06-07' });
    const beaClaim = await other.claim(`Patient/${bea.id}`, { billId: 'CLB-1' });
    await other.claimResponse(beaClaim.id, { total: 80, patientRef: `Patient/${bea.id}`, currency: 'AUD' });
    expect((await other.pay({ billId: 'CLB-1', paymentAmount: 30.5, currency: 'AUD', paymentDate: '2024-04-01', paymentTraceId: 'pi_clinic_b_1' })).status).toBe(200);
    beaSubscription = (await other.fhir.create(classicSubscription('Claim', `${receiver.url}/clinic-b`))).id;
    const created = await request(t.app).post('/admin/clients').auth(c.token, { type: 'bearer' }).send({ tenant: 'clinic-b', name: 'Clinic B front desk', scopes: ['system/*.cruds', 'webhook'] });
    expect(created.status).toBe(201);
    clinicB = created.body;
    b = await openBrowser();
  });
  afterAll(async () => {
    await b?.close();
    await worker?.stop();
    await receiver?.close();
    await new Promise((resolve) => server?.close(resolve));
    await t?.close();
  });

  it('signs in, follows a payment from the webhook to the journal and the patient, recovers a broken subscriber and applies a waiting payment', async () => {
    const { page, step } = b;
    // CONSOLE_SCREENSHOTS=1 refreshes the README's pictures (docs/console-*.png) on the way.
    const shoot = async (name: string) => {
      if (process.env.CONSOLE_SCREENSHOTS === '1') await page.screenshot({ path: join('docs', `console-${name}.png`) });
    };

    await step('sign-in', async () => {
      await page.goto(`${base}/console`);
      await shoot('sign-in');
      await page.getByLabel('Client id').fill(t.bootstrap.clientId);
      await page.getByLabel('Client secret').fill('not the secret');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: /invalid|secret|client/i }).waitFor();
      await page.getByLabel('Client secret').fill(t.bootstrap.clientSecret);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      // The token lives in memory only.
      expect(await page.evaluate(() => [document.cookie, localStorage.length, sessionStorage.length])).toEqual(['', 0, 0]);
    });

    await step('payment-in-journal', async () => {
      const paid = await c.pay({ billId: 'CON-1', paymentAmount: 60.25, paymentDate: '2024-03-01', paymentMethod: 'Credit Card', paymentTraceId: 'pi_console_1' });
      expect(paid.status).toBe(200);
      await page.getByRole('link', { name: 'Inbound' }).click();
      await page.getByRole('heading', { name: 'Inbound messages' }).waitFor();
      await page.getByLabel('Status').selectOption('processed');
      await page.getByRole('button', { name: 'Filter' }).click();
      const row = page.getByRole('row').filter({ hasText: 'cair' }).first();
      await row.getByText('processed').waitFor();
      await shoot('inbound');
      await row.getByRole('link', { name: /^#\d+$/ }).click();
      await page.getByRole('heading', { name: /Inbound message #\d+/ }).waitFor();
      await page.getByLabel('Raw body as received').getByText('pi_console_1').waitFor();
      await page.getByRole('heading', { name: 'Our answer: HTTP 200' }).waitFor();
      await page.getByLabel('Our answer body').getByText('Payment processed successfully').waitFor();
      await shoot('inbound-message');
    });

    await step('payment-on-patient', async () => {
      await page.getByRole('link', { name: 'Money' }).click();
      await page.getByLabel('Patient name').fill('Okafor');
      await page.getByRole('button', { name: 'Find' }).click();
      await page.getByRole('link', { name: 'Ada Okafor' }).click();
      await page.getByRole('heading', { name: 'Ada Okafor' }).waitFor();
      const payment = page.getByRole('table', { name: 'Payments' }).getByRole('row').filter({ hasText: 'pi_console_1' });
      // Every amount with its currency (Intl.NumberFormat of the server's decimal text).
      await payment.getByText(/^USD\s60\.25$/).first().waitFor();
      const lifecycle = page.getByRole('table', { name: 'Claim lifecycles' }).getByRole('row').filter({ hasText: 'CON-1' });
      await lifecycle.getByText(/^USD\s100\.00$/).waitFor(); // responsibility
      await lifecycle.getByText(/^USD\s39\.75$/).waitFor(); // open
      await page.getByRole('region', { name: 'Totals' }).getByText(/^USD\s39\.75$/).waitFor();
      await shoot('money');
    });

    await step('broken-subscriber', async () => {
      await receiver.waitFor(1);
      receiver.respond([], 500);
      expect((await c.pay({ billId: 'CON-1', paymentAmount: 10, paymentDate: '2024-03-02', paymentTraceId: 'pi_console_2' })).status).toBe(200);
      await waitUntil(async () => (await subscriptionStatus()) === 'error');
      await page.getByRole('link', { name: 'Deliveries' }).click();
      await page.getByRole('link', { name: subscriptionId }).click();
      await page.getByRole('heading', { name: `Subscription ${subscriptionId}` }).waitFor();
      await page.getByText('error', { exact: true }).first().waitFor();
      const failed = page.getByRole('table', { name: /Notifications/ }).getByRole('row').filter({ hasText: 'dead' });
      await failed.locator('li', { hasText: '500' }).nth(2).waitFor();
      expect(await failed.locator('li', { hasText: '500' }).count()).toBe(3);
      await page.getByText(/Delivery failed after 3 attempt/).first().waitFor();
      await page.getByRole('img', { name: /Endpoint health/ }).waitFor();
      await shoot('deliveries');
    });

    await step('resend-when-back', async () => {
      receiver.respond([], 200);
      const before = receiver.received.length;
      await page.getByRole('button', { name: 'Re-enable and resend dead' }).click();
      await page.getByRole('status').getByText(/Requeued 1 dead notifications/).waitFor();
      await receiver.waitFor(before + 1);
      await waitUntil(async () => (await subscriptionStatus()) === 'active');
      await page.getByRole('button', { name: 'Refresh' }).click();
      const row = page.getByRole('table', { name: /Notifications/ }).getByRole('row').filter({ hasText: 'PaymentReconciliation' }).first();
      await row.getByText('delivered').waitFor();
    });

    await step('apply-waiting-payment', async () => {
      expect((await c.pay({ billId: 'CON-WAIT', paymentAmount: 25, paymentDate: '2024-03-03', paymentTraceId: 'pi_console_wait' })).status).toBe(404);
      const claim = await c.claim(`Patient/${patientId}`, { billId: 'CON-WAIT' });
      await c.claimResponse(claim.id, { total: 25, patientRef: `Patient/${patientId}` });
      // The overview tells of it, and leads there.
      await page.getByRole('link', { name: 'Overview' }).click();
      await page.getByRole('link', { name: /1\s+waiting payments\s+oldest .* bill CON-WAIT, USD\s25\.00/ }).waitFor();
      await shoot('overview');
      await page.getByRole('link', { name: /waiting payments\s+oldest/ }).click();
      await page.getByRole('heading', { name: 'Waiting payments' }).waitFor();
      await page.getByRole('row').filter({ hasText: 'CON-WAIT' }).getByText(/^USD\s25\.00$/).waitFor();
      await shoot('waiting');
      await page.getByRole('button', { name: 'Apply bill CON-WAIT' }).click();
      await page.getByRole('status').getByText(/^Applied bill CON-WAIT: USD\s25\.00 to the claim, USD\s0\.00 as credit$/).waitFor();
      await page.getByText('No payment is waiting.').waitFor();
      expect(await c.paidOn(claim.id)).toBe(25);
    });

    await step('overview-counts', async () => {
      await page.getByRole('link', { name: 'Overview' }).click();
      await page.getByRole('link', { name: /3\s+messages in/ }).waitFor();
      await page.getByRole('img', { name: /Notifications out per hour/ }).waitFor();
    });

    await step('sources', async () => {
      await page.getByRole('link', { name: 'Sources' }).click();
      await page.getByRole('heading', { name: 'Webhook sources' }).waitFor();
      await page.getByLabel('Name').fill('InstaMed main');
      await page.getByRole('button', { name: 'Register' }).click();
      await page.getByRole('heading', { name: 'Credentials for InstaMed main, shown once' }).waitFor();
      await page.getByLabel('The new credentials').getByText('password').waitFor();
      await page.getByRole('button', { name: 'I have kept them' }).click();
      await page.getByRole('button', { name: 'Disable InstaMed main' }).click();
      await page.getByRole('status').getByText('InstaMed main disabled').waitFor();
      await page.getByRole('row').filter({ hasText: 'InstaMed main' }).getByText('disabled').waitFor();
      const sources = await request(t.app).get('/admin/webhook-sources').auth(c.token, { type: 'bearer' });
      expect(sources.body.sources.map((s: { name: string; enabled: boolean }) => [s.name, s.enabled])).toEqual([['InstaMed main', false]]);
      await shoot('sources');
    });

    await step('remittance-in-journal', async () => {
      const file = big835('ERA', 1001, 600);
      const posted = await request(t.app).post('/api/remittances').auth(c.token, { type: 'bearer' }).set('Content-Type', 'application/edi-x12').send(file);
      expect(posted.status, JSON.stringify(posted.body)).toBe(201);
      await page.getByRole('link', { name: 'Inbound' }).click();
      await page.getByRole('heading', { name: 'Inbound messages' }).waitFor();
      await page.getByLabel('Source', { exact: true }).fill('x12-835');
      await page.getByLabel('Status').selectOption('');
      await page.getByRole('button', { name: 'Filter' }).click();
      const row = page.getByRole('table', { name: 'Journal, newest first' }).getByRole('row').filter({ hasText: 'x12-835' });
      await row.getByText('processed').waitFor();
      expect(await row.count()).toBe(1);
      await row.getByRole('link', { name: /^#\d+$/ }).click();
      await page.getByRole('heading', { name: 'Remittance file' }).waitFor();
      // The summary (amounts with their currency), the truncated raw text, the first 1,000 resources and the rest counted.
      const traces = page.getByRole('table', { name: 'Payer traces' });
      await traces.getByRole('row').filter({ hasText: 'ERA' }).getByText(/^USD\s240,150\.00$/).waitFor();
      await page.getByText(/^USD\s240,150\.00$/).first().waitFor();
      await page.getByText(/Truncated: the first 256\.0 KiB of 2\d\d\.\d KiB are kept/).waitFor();
      await page.getByLabel('The start of the raw body as received').getByText('ISA*00*', { exact: false }).waitFor();
      const [event] = (await request(t.app).get('/admin/inbound-events?source=x12-835').auth(c.token, { type: 'bearer' })).body.items;
      const { resourcesTotal } = (await request(t.app).get(`/admin/inbound-events/${event.id}`).auth(c.token, { type: 'bearer' })).body;
      expect(resourcesTotal).toBeGreaterThan(1002); // 1,001 ClaimResponses, the PaymentReconciliation, the payer and payee
      await page.getByText(`and ${resourcesTotal - 1000} more (the journal lists the first 1,000;`, { exact: false }).waitFor();
      await page.getByText('All 1,000 listed').waitFor();
      await page.getByRole('heading', { name: 'Our answer: HTTP 201' }).waitFor();
      await shoot('inbound-remittance');
      // Its 600 claims not here yet wait, each with its amount and currency.
      await page.getByRole('link', { name: 'Waiting payments' }).click();
      const claims = page.getByRole('table', { name: /Payer claim payments \(X12 835\) waiting/ });
      await claims.getByRole('row').filter({ hasText: 'ERA-NOT-HERE-1001' }).getByText(/^USD\s150\.00$/).waitFor();
      expect(await claims.getByRole('row').count()).toBe(601);
    });

    await step('admin-picks-tenant', async () => {
      await page.getByLabel('Tenant').selectOption('clinic-b');
      await page.getByRole('link', { name: 'Money' }).click();
      await page.getByText('X-Tenant: clinic-b').waitFor();
      await page.getByLabel('Patient name').fill('Bauer');
      await page.getByRole('button', { name: 'Find' }).click();
      await page.getByRole('link', { name: 'Bea Bauer' }).click();
      await page.getByRole('heading', { name: 'Bea Bauer' }).waitFor();
      // The server's figures: 80.00 owed, 30.50 paid, 49.50 open.
      const lifecycle = page.getByRole('table', { name: 'Claim lifecycles' }).getByRole('row').filter({ hasText: 'CLB-1' });
      // In clinic-b's currency, AUD, as the server states it.
      await lifecycle.getByText(/^AUD\s80\.00$/).waitFor();
      await lifecycle.getByText(/^AUD\s49\.50$/).waitFor();
      await page.getByRole('region', { name: 'Totals' }).getByText(/^AUD\s49\.50$/).waitFor();
      await page.getByRole('table', { name: 'Payments' }).getByText(/^AUD\s30\.50$/).first().waitFor();
      await shoot('money-aud');
      await page.getByRole('link', { name: 'Deliveries' }).click();
      await page.getByRole('link', { name: beaSubscription }).waitFor();
      expect(await page.getByRole('link', { name: subscriptionId }).count()).toBe(0);
    });

    await step('tenant-client', async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Client id').fill(clinicB.clientId);
      await page.getByLabel('Client secret').fill(clinicB.clientSecret);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      const views = page.getByRole('navigation', { name: 'Views' });
      for (const view of ['Overview', 'Inbound', 'Sources', 'Waiting payments', 'Deliveries', 'Money']) await views.getByRole('link', { name: view, exact: true }).waitFor();
      expect(await page.getByLabel('Tenant').inputValue()).toBe('clinic-b');
      await page.getByRole('link', { name: /1\s+messages in/ }).waitFor();
      await views.getByRole('link', { name: 'Inbound', exact: true }).click();
      const journal = page.getByRole('table', { name: 'Journal, newest first' });
      await journal.getByText('processed').waitFor();
      expect(await journal.getByRole('row').count()).toBe(2); // its one message, under the header
      await views.getByRole('link', { name: 'Deliveries', exact: true }).click();
      await page.getByRole('link', { name: beaSubscription }).waitFor();
      expect(await page.getByRole('link', { name: subscriptionId }).count()).toBe(0);
      await views.getByRole('link', { name: 'Money', exact: true }).click();
      await page.getByRole('link', { name: 'Bea Bauer' }).waitFor();
      expect(await page.getByRole('link', { name: 'Ada Okafor' }).count()).toBe(0);
      await page.getByRole('link', { name: 'Bea Bauer' }).click();
      await page.getByRole('table', { name: 'Claim lifecycles' }).getByText(/^AUD\s49\.50$/).waitFor();
      await shoot('tenant-client');
    });

    await step('tenant-client-registers-source', async () => {
      const views = page.getByRole('navigation', { name: 'Views' });
      await views.getByRole('link', { name: 'Sources', exact: true }).click();
      await page.getByRole('heading', { name: 'Webhook sources' }).waitFor();
      // Its own tenant's sources only: the operator's InstaMed source of `default` is not listed.
      await page.getByText('No sources registered.').waitFor();
      await page.getByLabel('Kind').selectOption('x12-835');
      await page.getByLabel('Name').fill('Clinic B clearinghouse');
      await page.getByRole('button', { name: 'Register' }).click();
      await page.getByRole('heading', { name: 'Credentials for Clinic B clearinghouse, shown once' }).waitFor();
      await page.getByLabel('The new credentials').getByText('password').waitFor();
      await shoot('sources-tenant-client');
      await page.getByRole('button', { name: 'I have kept them' }).click();
      await page.getByRole('row').filter({ hasText: 'Clinic B clearinghouse' }).getByRole('button', { name: 'Rotate credentials of Clinic B clearinghouse' }).waitFor();
      const sources = await request(t.app).get('/admin/webhook-sources').auth(c.token, { type: 'bearer' });
      expect(sources.body.sources.map((s: { name: string; tenant: string; kind: string }) => [s.name, s.tenant, s.kind])).toEqual([['InstaMed main', 'default', 'instamed'], ['Clinic B clearinghouse', 'clinic-b', 'x12-835']]);
    });
  });

  async function subscriptionStatus(): Promise<string> {
    const res = await request(t.app).get(`/fhir/Subscription/${subscriptionId}`).auth(c.token, { type: 'bearer' });
    return res.body.status;
  }
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
