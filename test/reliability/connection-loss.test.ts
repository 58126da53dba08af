import { createHmac, randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { ServerProcess } from '../support/process.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import type { Target } from './support.ts';
import { Api, adminClient, booksProblems, credentials, notifiedIds, paymentSubscription, startPayments, startServer, tally, target, waitUntil } from './support.ts';

/**
 * The database goes away under load, as in a PostgreSQL restart or failover: the server's sessions
 * are terminated (pg_terminate_backend) and no new one is accepted for OUTAGE_MS. Requests in the
 * meantime must be clean 503s with Retry-After in each surface's shape, nothing half written, the
 * process alive (the LISTEN connection included), and everything back by itself afterwards.
 * The scenario runs in a database of its own: refusing connections to a shared one would stop
 * every other user of it.
 */
const OUTAGE_MS = 2000;
const databaseUrl = process.env.DATABASE_URL;
let admin: pg.Client | undefined;
let database: string | undefined;
let server: ServerProcess | undefined;
let receiver: Receiver | undefined;

afterAll(async () => {
  server?.child.kill('SIGKILL');
  await receiver?.close();
  if (admin && database) {
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(database)} ALLOW_CONNECTIONS true`).catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`).catch(() => {});
  }
  await admin?.end();
});

describe.skipIf(!databaseUrl)('database connection loss under load', () => {
  it('answers clean 503s while the database is away, writes nothing by halves, and recovers by itself', async () => {
    admin = await adminClient(databaseUrl!);
    database = `fb_fault_${randomBytes(4).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
    const url = new URL(databaseUrl!);
    url.pathname = `/${database}`;
    const fault: Target = target(url.toString(), 'dbloss');
    const terminate = async (): Promise<number> =>
      (await admin!.query('SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1', [fault.applicationName])).rows[0].n;

    receiver = await startReceiver();
    server = await startServer(fault);
    const api = await Api.connect(server);
    await api.fhir('POST', 'Subscription', paymentSubscription(receiver.url));
    const billIds = Array.from({ length: 8 }, (_, i) => `dbloss-${fault.schema}-${i}`);
    const claimIds = await Promise.all(billIds.map((b) => api.payableClaim(b)));

    const registered = await fetch(`${api.base}/admin/webhook-sources`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${api.token}` },
      body: JSON.stringify({ tenant: 'default', kind: 'instamed', name: 'InstaMed (outage probe)' }),
    });
    const instamed = (await registered.json()) as { url: string; credentials: { username: string; password: string } };
    const instamedBasic = `Basic ${Buffer.from(`${instamed.credentials.username}:${instamed.credentials.password}`).toString('base64')}`;
    const tyroSecret = randomBytes(24).toString('hex');
    const tyro = (await (await fetch(`${api.base}/admin/webhook-sources`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${api.token}` },
      body: JSON.stringify({ tenant: 'default', kind: 'tyro', name: 'Tyro (outage probe)', signingSecret: tyroSecret }),
    })).json()) as { url: string };
    const curacelSecret = randomBytes(24).toString('hex');
    const curacel = (await (await fetch(`${api.base}/admin/webhook-sources`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${api.token}` },
      body: JSON.stringify({ tenant: 'default', kind: 'claims-vetting', name: 'Curacel (outage probe)', signingSecret: curacelSecret }),
    })).json()) as { url: string };

    const load = startPayments(api, billIds, fault.schema);
    await waitUntil('payments under way', () => load.answers.filter((a) => a.status === 200).length >= 40, 60_000);

    // The outage: no new sessions, and every session the server has is cut.
    const outageStart = Date.now();
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(database)} ALLOW_CONNECTIONS false`);
    let terminated = await terminate();
    await new Promise((r) => setTimeout(r, 300));
    const fhirProbe = await fetch(`${api.base}/fhir/Claim?_count=1`, { headers: { Authorization: `Bearer ${api.token}` } });
    const tokenProbe = await fetch(`${api.base}/api/token`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(credentials) });
    const instamedProbe = await fetch(`${api.base}${instamed.url}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: instamedBasic },
      body: JSON.stringify({ TransactionId: 'outage-1', TransactionStatus: 'C', TransactionType: 'Sale', Amount: '1.00', AdditionalCode1: billIds[0] }),
    });
    const tyroBody = JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: { _id: 'outage1', invoiceReference: billIds[0], modified: new Date().toISOString() } });
    const tyroTimestamp = new Date().toISOString();
    const tyroProbe = await fetch(`${api.base}${tyro.url}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Sender-Timestamp': tyroTimestamp, 'X-Sender-Signature': createHmac('sha256', tyroSecret).update(tyroTimestamp + tyroBody).digest('hex') },
      body: tyroBody,
    });
    const curacelBody = JSON.stringify({ event: 'claim.vetted', data: { id: 1 } });
    const curacelProbe = await fetch(`${api.base}${curacel.url}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'x-curacel-signature': createHmac('sha256', curacelSecret).update(curacelBody).digest('hex') },
      body: curacelBody,
    });
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - outageStart))));
    terminated += await terminate(); // any session that was half open when connections were refused
    await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(database)} ALLOW_CONNECTIONS true`);
    const backAt = Date.now();

    await waitUntil('payments acknowledged again', () => load.answers.some((a) => a.status === 200 && a.at > backAt + 500), 60_000);
    await load.stop();
    const recoveredAfter = Math.min(...load.answers.filter((a) => a.status === 200 && a.at > backAt).map((a) => a.at)) - backAt;

    expect(server.child.exitCode).toBeNull();
    expect(terminated).toBeGreaterThan(0);
    // /fhir: an OperationOutcome; /api/token and the webhook: the Cair contract's shapes; all 503 with Retry-After.
    expect(fhirProbe.status).toBe(503);
    expect(fhirProbe.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await fhirProbe.json()).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient' }] });
    expect(tokenProbe.status).toBe(503);
    expect(await tokenProbe.json()).toEqual({ error: 'Failed to issue token' });
    // InstaMed's one line of text, and a status the sender retries on.
    expect(instamedProbe.status).toBe(503);
    expect(instamedProbe.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await instamedProbe.text()).toMatch(/database is unavailable/);
    // Tyro retries a timeout or a 500 and nothing else: a 503 would lose the event.
    expect(tyroProbe.status).toBe(500);
    expect((await tyroProbe.json()).error).toMatch(/database is unavailable/);
    expect(curacelProbe.status).toBe(503);
    expect(curacelProbe.headers.get('retry-after')).toMatch(/^\d+$/);
    const failures = load.answers.filter((a) => a.status !== 200);
    expect(failures.filter((a) => a.status !== 503)).toEqual([]);
    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures) {
      expect(f.retryAfter).toMatch(/^\d+$/);
      expect(f.body).toEqual({ error: 'Failed to process payment', details: expect.any(String) });
    }

    const acknowledged = load.answers.filter((a) => a.status === 200);
    const stored = tally(await api.paymentReconciliations());
    const lost = acknowledged.filter((a) => stored.count.get(a.traceId) !== 1);
    const doubled = [...stored.count].filter(([, n]) => n > 1);
    expect(lost).toEqual([]);
    expect(doubled).toEqual([]);
    for (const [i, claimId] of claimIds.entries()) {
      const storedForClaim = [...stored.count.keys()].filter((traceId) => traceId.startsWith(`pi_${fault.schema}_${i}_`)).length;
      expect(await api.paidOn(claimId)).toBe(storedForClaim);
    }
    expect(await booksProblems(fault)).toEqual([]);

    // The worker kept going: its LISTEN connection came back, and every stored payment is notified.
    await waitUntil('every stored payment notified', () => [...stored.byId.keys()].every((id) => notifiedIds(receiver!).has(id)), 60_000).catch((err) => {
      console.log(server!.logs.filter((l) => !l.includes('reqId')).join('\n')); // the worker's side of it
      throw err;
    });
    const lastPayment = Math.max(...acknowledged.map((a) => a.at));
    const notifiedAfter = Math.max(...receiver.received.map((r) => r.at)) - lastPayment;
    console.log(
      `database connection loss under load: ${OUTAGE_MS / 1000} s outage (${terminated} sessions terminated, new ones refused); ` +
        `${acknowledged.length} acknowledged, ${failures.length} answered 503 with Retry-After, 0 other failures, ` +
        `${lost.length} lost, ${doubled.length} doubled, books balanced; first 200 ${(recoveredAfter / 1000).toFixed(1)} s after the database was back, ` +
        `the last notification ${(Math.max(0, notifiedAfter) / 1000).toFixed(1)} s after the last acknowledged payment`,
    );
  });
});
