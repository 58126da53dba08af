import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Bundle, Claim, PaymentReconciliation } from '@medplum/fhirtypes';
import { PAYMENT_TRACE_ID_SYSTEM, checkBooks } from '../../src/billing/index.ts';
import { openDatabase } from '../../src/db/index.ts';
import { FULL_ACCESS } from '../../src/fhir/access.ts';
import { PostgresRepository } from '../../src/fhir/repository.ts';
import { C4BB, PAID_EXT, WEBHOOK } from '../support/billing.ts';
import { claim, patient } from '../support/fixtures.ts';
import { fetchToken, startServerProcess } from '../support/process.ts';
import type { ServerProcess } from '../support/process.ts';
import type { Receiver } from '../support/receiver.ts';

/**
 * The fault suite's tools: the real server (`node src/main.ts`) on PostgreSQL in a schema of its
 * own, Cair payments (seeds/000) from concurrent clients, and what must hold afterwards: every
 * acknowledged payment stored once, none doubled, the books balanced, every stored one notified.
 */
export const credentials = { clientId: 'fault-suite', clientSecret: randomBytes(24).toString('base64url') };

export interface Target {
  /** DATABASE_URL for the server, tagged with an application_name of its own (for pg_terminate_backend). */
  databaseUrl: string;
  schema: string;
  applicationName: string;
}

export function target(databaseUrl: string, label: string): Target {
  const tag = randomBytes(4).toString('hex');
  const applicationName = `fhir-billing-${label}-${tag}`;
  const url = new URL(databaseUrl);
  url.searchParams.set('application_name', applicationName);
  return { databaseUrl: url.toString(), schema: `fault_${label}_${tag}`, applicationName };
}

export function startServer(t: Target, env: Record<string, string> = {}): Promise<ServerProcess> {
  return startServerProcess({
    DATABASE_URL: t.databaseUrl,
    DATABASE_SCHEMA: t.schema,
    BOOTSTRAP_CLIENT_ID: credentials.clientId,
    BOOTSTRAP_CLIENT_SECRET: credentials.clientSecret,
    OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'true',
    DELIVERY_POLL_INTERVAL_MS: '200',
    // A receiver's transient failure (a reset keep-alive socket) is retried in a second, not in 30 s.
    DELIVERY_RETRY_SCHEDULE: '200ms,500ms,1s,2s',
    SECRET_HASH_COST: '10',
    LOG_LEVEL: 'warn',
    ...env,
  });
}

export class Api {
  readonly base: string;
  readonly token: string;

  constructor(base: string, token: string) {
    this.base = base;
    this.token = token;
  }

  static async connect(server: ServerProcess): Promise<Api> {
    return new Api(server.base, await fetchToken(server.base, credentials));
  }

  async fhir(method: string, path: string, body?: unknown): Promise<any> {
    const res = await fetch(`${this.base}/fhir/${path}`, {
      method,
      headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${this.token}` },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  }

  /** A claim with bill id `billId` whose patient owes far more than the suite will pay. */
  async payableClaim(billId: string): Promise<string> {
    const p = await this.fhir('POST', 'Patient', patient());
    const c = await this.fhir('POST', 'Claim', claim(`Patient/${p.id}`, billId));
    await this.fhir('POST', 'ClaimResponse', {
      resourceType: 'ClaimResponse',
      status: 'active',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
      use: 'claim',
      patient: { reference: `Patient/${p.id}` },
      created: '2024-05-02T10:00:00Z',
      insurer: { display: 'Payer' },
      request: { reference: `Claim/${c.id}` },
      outcome: 'complete',
      total: [{ category: { coding: [{ system: C4BB, code: 'memberliability' }] }, amount: { value: 1_000_000, currency: 'USD' } }],
    });
    return c.id;
  }

  /** Every PaymentReconciliation, following the search's next links. */
  async paymentReconciliations(): Promise<PaymentReconciliation[]> {
    const all: PaymentReconciliation[] = [];
    for (let url: string | undefined = 'PaymentReconciliation?_count=500'; url; ) {
      const page: Bundle = await this.fhir('GET', url);
      all.push(...(page.entry ?? []).map((e) => e.resource as PaymentReconciliation));
      const next = page.link?.find((l) => l.relation === 'next')?.url;
      url = next ? next.slice(next.indexOf('/fhir/') + '/fhir/'.length) : undefined;
    }
    return all;
  }

  async paidOn(claimId: string): Promise<number> {
    const c: Claim = await this.fhir('GET', `Claim/${claimId}`);
    return c.extension?.find((e) => e.url === PAID_EXT)?.valueMoney?.value ?? 0;
  }
}

/** A classic rest-hook Subscription on every PaymentReconciliation: a PUT of each to the receiver. */
export function paymentSubscription(endpoint: string) {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'fault suite',
    criteria: 'PaymentReconciliation',
    channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json' },
  };
}

export interface PaymentAnswer {
  traceId: string;
  client: number;
  /** HTTP status, or undefined when no answer came (the connection failed). */
  status?: number;
  body?: any;
  retryAfter?: string | null;
  /** When the answer (or the failure) came, Date.now(). */
  at: number;
}

/**
 * `clients` concurrent senders, each posting 1.00 payments with fresh trace ids to its own bill
 * until `stop()`: a payment per request, each answer recorded.
 */
export function startPayments(api: Api, billIds: string[], runTag: string): { answers: PaymentAnswer[]; stop: () => Promise<void> } {
  const answers: PaymentAnswer[] = [];
  let stopping = false;
  const loops = billIds.map(async (billId, client) => {
    for (let n = 0; !stopping; n++) {
      const traceId = `pi_${runTag}_${client}_${n}`;
      try {
        const res = await fetch(`${api.base}${WEBHOOK}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${api.token}` },
          body: JSON.stringify({ billId, paymentAmount: 1, paymentDate: '2024-06-01', paymentMethod: 'Credit Card', paymentTraceId: traceId }),
          signal: AbortSignal.timeout(30_000),
        });
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // kept as text: the assertion on the shape says what came
        }
        answers.push({ traceId, client, status: res.status, body, retryAfter: res.headers.get('retry-after'), at: Date.now() });
      } catch {
        answers.push({ traceId, client, at: Date.now() });
        await new Promise((r) => setTimeout(r, 20)); // the server is gone: do not spin
      }
    }
  });
  return {
    answers,
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

export interface StoredPayments {
  /** Trace id → how many PaymentReconciliations carry it. */
  count: Map<string, number>;
  byId: Map<string, string>;
}

export function tally(prs: PaymentReconciliation[]): StoredPayments {
  const count = new Map<string, number>();
  const byId = new Map<string, string>();
  for (const pr of prs) {
    const traceId = pr.identifier?.find((i) => i.system === PAYMENT_TRACE_ID_SYSTEM)?.value;
    if (!traceId) continue;
    count.set(traceId, (count.get(traceId) ?? 0) + 1);
    byId.set(pr.id!, traceId);
  }
  return { count, byId };
}

/** The ids of the PaymentReconciliations the receiver was sent (classic full-resource: PUT /PaymentReconciliation/{id}). */
export function notifiedIds(receiver: Receiver): Set<string> {
  return new Set(receiver.received.map((r) => /\/PaymentReconciliation\/([^/?]+)$/.exec(r.url)?.[1]).filter((id): id is string => !!id));
}

export async function waitUntil(what: string, done: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A pg client of the test's own (never one of the server's sessions), for setup and faults. */
export async function adminClient(databaseUrl: string): Promise<pg.Client> {
  const url = new URL(databaseUrl);
  url.searchParams.set('application_name', 'fault-suite-admin');
  const client = new pg.Client({ connectionString: url.toString() });
  client.on('error', () => {});
  await client.connect();
  return client;
}

export async function dropSchema(t: Target): Promise<void> {
  const admin = await adminClient(t.databaseUrl);
  await admin.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(t.schema)} CASCADE`).finally(() => admin.end());
}

/** checkBooks (src/billing) on the server's own schema, from a connection of the test's. */
export async function booksProblems(t: Target, tenantId = 'default'): Promise<string[]> {
  const url = new URL(t.databaseUrl);
  url.searchParams.set('application_name', 'fault-suite-checker'); // not one of the server's sessions
  const db = await openDatabase({ databaseUrl: url.toString(), schema: t.schema, dataDir: 'unused', poolSize: 2 });
  try {
    return await checkBooks(new PostgresRepository(db, { tenantId, access: FULL_ACCESS, baseUrl: 'http://fault-suite/fhir' }));
  } finally {
    await db.close();
  }
}
