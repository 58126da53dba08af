import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentReconciliation } from '@medplum/fhirtypes';
import { insertTenant } from '../../src/auth/store.ts';
import { checkBooks } from '../../src/billing/index.ts';
import { Money2 } from '../../src/billing/money.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, serverRepo } from '../support/billing.ts';
import { FORMATS, post, registerSource, reversalOf, sale, voidOf } from '../support/instamed.ts';
import type { Fields, Format } from '../support/instamed.ts';

/**
 * Issue 10's property: any sequence of approvals, voids, partial refunds, returns, chargebacks and
 * duplicates, in any of the three formats, through the InstaMed webhook over HTTP, leaves every
 * paid total, credit and PaymentReconciliation equal to the ledger (checkBooks), never answers
 * anything but 200 or 400, and a message sent again changes nothing.
 */
let t: TestApp;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  admin = await t.token('admin');
});
afterAll(() => t.close());

type Op =
  | { kind: 'approve'; payment: number; format: Format }
  | { kind: 'void'; payment: number; format: Format }
  | { kind: 'refund' | 'return' | 'chargeback'; payment: number; cents: number; format: Format }
  | { kind: 'again'; which: number };

const format = fc.constantFrom(...FORMATS);
const payment = fc.integer({ min: 0, max: 3 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('approve' as const), payment, format }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('void' as const), payment, format }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('refund' as const, 'return' as const, 'chargeback' as const), payment, cents: fc.integer({ min: 1, max: 9_000 }), format }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('again' as const), which: fc.nat(20) }) },
);

const RUNS = Number(process.env.FC_RUNS ?? 8);
let run = 0;

describe('books over random InstaMed sequences (fast-check, HTTP)', () => {
  it(`paid totals, credits and PaymentReconciliations equal the ledger (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 15_000 }),
        fc.array(op, { minLength: 1, maxLength: 10 }),
        async (paymentCents, owedCents, ops) => {
          const tenant = `im-${++run}-${randomUUID().slice(0, 8)}`;
          await insertTenant(t.db, tenant, tenant);
          const c = client(t, await t.token('system/*.cruds', tenant));
          const source = await registerSource(t, admin, { tenant });
          const patientRef = await c.patient();
          // Payments 0-1 go to a claim that owes owedCents, 2-3 to one without a ClaimResponse (all credit).
          const claims = [await c.claim(patientRef), await c.claim(patientRef)];
          await c.claimResponse(claims[0].id, { total: owedCents / 100, patientRef });
          const ids = paymentCents.map(() => randomUUID().replace(/-/g, ''));
          const amountOf = (i: number): string => new Money2(paymentCents[i]).div(100).toFixed(2);
          const billOf = (i: number): string => claims[i < 2 ? 0 : 1].billId;

          const sent: { fields: Fields; format: Format; status: number; text: string }[] = [];
          const send = async (fields: Fields, f: Format) => {
            const res = await post(t, source.url, source.credentials!, fields, f);
            expect([200, 400], `${res.status} ${res.text}`).toContain(res.status);
            sent.push({ fields, format: f, status: res.status, text: res.text });
            return res;
          };
          for (const o of ops) {
            if (o.kind === 'again') {
              if (sent.length === 0) continue;
              const earlier = sent[o.which % sent.length];
              const before = await snapshot(c, claims.map((x) => x.id));
              const res = await send(earlier.fields, earlier.format);
              // A message that was stored is stored: the same again is the same answer and changes nothing.
              if (earlier.status === 200) {
                expect(res.status).toBe(200);
                expect(await snapshot(c, claims.map((x) => x.id))).toEqual(before);
              }
            } else if (o.kind === 'approve') {
              await send(sale(ids[o.payment], billOf(o.payment), amountOf(o.payment)), o.format);
            } else if (o.kind === 'void') {
              await send(voidOf(ids[o.payment], billOf(o.payment), amountOf(o.payment)), o.format);
            } else {
              const cents = new Money2(o.cents).div(100).toFixed(2);
              await send(reversalOf(o.kind, randomUUID().replace(/-/g, ''), ids[o.payment], billOf(o.payment), cents), o.format);
            }
          }

          const repo = serverRepo(t, tenant);
          expect(await checkBooks(repo)).toEqual([]);
          // Across the tenant: what the claims were paid plus what credit holds (allocated or not)
          // is what the live PaymentReconciliations say came in and went back.
          const s = await snapshot(c, claims.map((x) => x.id));
          expect(s.paid.plus(s.credit).toFixed(2)).toBe(s.reconciled.toFixed(2));
          expect(s.paid.lte(new Money2(owedCents).div(100))).toBe(true);
        },
      ),
      { numRuns: RUNS, ...(process.env.FC_SEED && { seed: Number(process.env.FC_SEED) }) },
    );
  }, 600_000);
});

/** Paid totals, PatientCredit amounts (what credit received net of reversals) and live PaymentReconciliation amounts. */
async function snapshot(c: ReturnType<typeof client>, claimIds: string[]) {
  let paid = new Money2(0);
  for (const id of claimIds) paid = paid.plus(String((await c.paidOn(id)) ?? 0));
  let credit = new Money2(0);
  for (const pc of await c.fhir.search<{ amount?: { value: number }; allocation?: unknown[] }>('PatientCredit?_count=100')) credit = credit.plus(String(pc.amount?.value ?? 0));
  let reconciled = new Money2(0);
  let count = 0;
  for (const pr of await c.fhir.search<PaymentReconciliation>('PaymentReconciliation?_count=100')) {
    count++;
    if (pr.status !== 'cancelled') reconciled = reconciled.plus(String(pr.paymentAmount.value ?? 0));
  }
  return { paid, credit, reconciled, count, paidText: paid.toFixed(2), creditText: credit.toFixed(2) };
}
