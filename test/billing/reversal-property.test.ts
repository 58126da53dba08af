import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Claim, ClaimResponse, Patient } from '@medplum/fhirtypes';
import { insertTenant } from '../../src/auth/store.ts';
import { amount, applyPatientPayment, billingObserver, checkBooks, reversePayment, toJsonNumber } from '../../src/billing/index.ts';
import type { Amount, ReversalKind } from '../../src/billing/index.ts';
import { Money2 } from '../../src/billing/money.ts';
import { FULL_ACCESS } from '../../src/fhir/access.ts';
import type { ChangeObserver } from '../../src/fhir/change-observer.ts';
import { PostgresRepository } from '../../src/fhir/repository.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim as claimFixture } from '../support/fixtures.ts';

/**
 * Any sequence of approvals, resends, voids, partial refunds, returns, chargebacks, duplicates and a
 * late ClaimResponse, through the billing commands on a real database, keeps the books equal to
 * the ledger (checkBooks) and never reverses a payment beyond what remains of it.
 */
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

type Op =
  | { kind: 'pay'; claim: number; trace: number; cents: number }
  | { kind: 'reverse'; how: ReversalKind; trace: number; rid: number; cents: number | null }
  | { kind: 'again'; index: number }
  | { kind: 'respond'; cents: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('pay' as const), claim: fc.integer({ min: 0, max: 1 }), trace: fc.integer({ min: 0, max: 3 }), cents: fc.integer({ min: 1, max: 12_000 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('reverse' as const),
      how: fc.constantFrom<ReversalKind>('void', 'refund', 'return', 'chargeback'),
      trace: fc.integer({ min: 0, max: 3 }),
      rid: fc.integer({ min: 0, max: 4 }),
      cents: fc.option(fc.integer({ min: 1, max: 9_000 }), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('again' as const), index: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('respond' as const), cents: fc.integer({ min: 0, max: 15_000 }) }) },
);
const RUNS = Number(process.env.FC_RUNS ?? 20);
let run = 0;

async function paymentState(tenant: string, traceId: string): Promise<{ amount: Amount; reversed: Amount; status: string } | undefined> {
  const rows = await t.db.query<{ amount: string; reversed: string; status: string }>(
    'SELECT amount::text, reversed_amount::text AS reversed, status FROM patient_payment WHERE tenant_id = $1 AND payment_key = $2',
    [tenant, `trace:${traceId}`],
  );
  return rows[0] && { amount: new Money2(rows[0].amount), reversed: new Money2(rows[0].reversed), status: rows[0].status };
}

describe('reversals, property-based', () => {
  it(`books equal the ledger and no payment is over-reversed (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 15_000 }), fc.array(op, { minLength: 1, maxLength: 12 }), async (owedCents, ops) => {
        const tenant = `rprop-${++run}-${randomUUID().slice(0, 8)}`;
        await insertTenant(t.db, tenant, tenant);
        const observer: ChangeObserver = billingObserver({ db: t.db, observer: () => observer });
        const repo = new PostgresRepository(t.db, { tenantId: tenant, access: FULL_ACCESS, baseUrl: 'http://test/fhir' }, { observer });
        const patient = await repo.createResource<Patient>({ resourceType: 'Patient', name: [{ family: 'Prop' }] });
        const patientRef = `Patient/${patient.id}`;
        const claims: Claim[] = [];
        for (let i = 0; i < 2; i++) claims.push(await repo.createResource(claimFixture(patientRef, `${tenant}-bill-${i}`)));
        const respond = async (cents: number, created: string): Promise<void> => {
          const category = { coding: [{ system: 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication', code: 'memberliability' }] };
          await repo.createResource<ClaimResponse>({
            resourceType: 'ClaimResponse', status: 'active', use: 'claim', outcome: 'complete', created,
            type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
            patient: { reference: patientRef }, insurer: { display: 'Payer' }, request: { reference: `Claim/${claims[0].id}` },
            total: [{ category, amount: { value: toJsonNumber(new Money2(cents).div(100)), currency: 'USD' } }],
          });
        };
        // Claim 0 owes owedCents; claim 1 never gets a ClaimResponse (its payments become credit).
        await respond(owedCents, '2024-05-02T10:00:00Z');
        let responses = 1;

        const done: Op[] = [];
        for (const first of ops) {
          const o = first.kind === 'again' ? done[first.index % Math.max(done.length, 1)] ?? first : first;
          if (o.kind === 'again') continue;
          done.push(o);
          if (o.kind === 'pay') {
            const result = await applyPatientPayment(repo, { source: 'prop', billId: `${tenant}-bill-${o.claim}`, amount: amount(new Money2(o.cents).div(100)), paymentTraceId: `${tenant}-t${o.trace}` });
            if (!result.ok) expect(result.code).toBe('conflict'); // another bill, or a changed resend of a reversed payment
          } else if (o.kind === 'respond') {
            await respond(o.cents, `2024-06-${String(++responses).padStart(2, '0')}T00:00:00Z`);
          } else {
            const traceId = `${tenant}-t${o.trace}`;
            const before = await paymentState(tenant, traceId);
            const asked = o.cents === null ? undefined : amount(new Money2(o.cents).div(100));
            const reversalTraceId = o.how === 'void' ? undefined : `${tenant}-r${o.rid}`;
            const result = await reversePayment(repo, { source: 'prop', kind: o.how, originalTraceId: traceId, ...(reversalTraceId && { reversalTraceId }), ...(asked && { amount: asked }) });
            const after = await paymentState(tenant, traceId);
            if (!result.ok) {
              expect(['invalid', 'conflict']).toContain(result.code);
              expect(after?.reversed.toFixed(2)).toBe(before?.reversed.toFixed(2)); // a refusal moves nothing
              continue;
            }
            if (result.value.status === 'waiting') expect(before).toBeUndefined();
            if (result.value.status === 'created') {
              const remaining = before!.amount.minus(before!.reversed);
              expect(result.value.amount.lte(remaining)).toBe(true);
              if (asked && o.how !== 'void') expect(result.value.amount.eq(asked)).toBe(true);
              expect(after!.reversed.eq(before!.reversed.plus(result.value.amount))).toBe(true);
            }
            if (result.value.status === 'unchanged') expect(after!.reversed.eq(before!.reversed)).toBe(true);
          }
        }

        expect(await checkBooks(repo)).toEqual([]);
        // Money in = money on claims + credit left + money given back.
        const sums = await t.db.query<{ account_type: string; kind: string; total: string }>(
          `SELECT account_type, kind, sum(amount)::text AS total FROM ledger_entry WHERE tenant_id = $1 AND amount > 0 GROUP BY account_type, kind`,
          [tenant],
        );
        const total = (pred: (r: { account_type: string; kind: string }) => boolean): Amount => sums.filter(pred).reduce((s, r) => s.plus(r.total), new Money2(0));
        const balances = await t.db.query<{ account_type: string; total: string }>(
          'SELECT account_type, sum(amount)::text AS total FROM ledger_entry WHERE tenant_id = $1 GROUP BY account_type',
          [tenant],
        );
        const balance = (type: string): Amount => new Money2(balances.find((b) => b.account_type === type)?.total ?? 0);
        const received = total((r) => r.kind === 'payment.received');
        const givenBack = total((r) => r.account_type === 'payer');
        expect(received.minus(givenBack).eq(balance('lifecycle').plus(balance('credit')))).toBe(true);
        const rows = await t.db.query<{ paid: string }>('SELECT patient_paid_amount::text AS paid FROM billing_lifecycle WHERE tenant_id = $1 AND lifecycle_id = $2', [tenant, claims[0].id]);
        expect(new Money2(rows[0]?.paid ?? 0).isNegative()).toBe(false);
      }),
      { numRuns: RUNS, ...(process.env.FC_SEED && { seed: Number(process.env.FC_SEED) }) },
    );
  }, 300_000);
});
