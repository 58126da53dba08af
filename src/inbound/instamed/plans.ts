import { Operator } from '@medplum/core';
import type { Basic, Claim, Patient, Reference } from '@medplum/fhirtypes';
import { claimIdSystem } from '../../billing/index.ts';
import type { PostgresRepository } from '../../fhir/repository.ts';
import { CANONICAL_BASE } from '../../profiles/index.ts';
import type { Reader } from './fields.ts';

/**
 * InstaMed payment plans (Created, Updated) as FHIR `Basic` resources: R4 has no payment-plan
 * resource, and a plan moves no money, so it is a record beside the books, not in them.
 *   Basic.code        payment-plan (fhir-profiles/CodeSystem-record-kind.json)
 *   Basic.identifier  the plan id (system INSTAMED_PAYMENT_PLAN_SYSTEM): search ?identifier=
 *   Basic.subject     the patient: the Claim's patient when the plan carries our bill id, else a
 *                     Patient whose identifier is the sender's PatientID: search ?patient=
 *   Basic.created     ResponseDateTime's date
 *   extension         payment-plan-type (PaymentPlanTransactionType as sent), installment count
 * An installment's payment carries the same identifier on its PaymentReconciliation, so
 * PaymentReconciliation?identifier=<system>|<plan id> lists the plan's installments.
 */
export const INSTAMED_PAYMENT_PLAN_SYSTEM = `${CANONICAL_BASE}/identifier/instamed-payment-plan-id`;
export const RECORD_KIND_SYSTEM = `${CANONICAL_BASE}/CodeSystem/record-kind`;
export const PAYMENT_PLAN_TYPE_EXTENSION = `${CANONICAL_BASE}/StructureDefinition/payment-plan-type`;
export const PAYMENT_PLAN_INSTALLMENTS_EXTENSION = `${CANONICAL_BASE}/StructureDefinition/payment-plan-installment-count`;

const escape = (v: string): string => v.replace(/[\\,|$]/g, (c) => `\\${c}`);

export interface PlanOutcome {
  status: 'created' | 'updated' | 'unchanged';
  id: string;
}

export async function savePaymentPlan(
  repo: PostgresRepository,
  r: Reader,
  planId: string,
  date: string | undefined,
  claimSystem: string | null,
): Promise<PlanOutcome> {
  const existing = (
    await repo.searchResources<Basic>({
      resourceType: 'Basic',
      filters: [{ code: 'identifier', operator: Operator.EQUALS, value: `${escape(INSTAMED_PAYMENT_PLAN_SYSTEM)}|${escape(planId)}` }],
      count: 1,
    })
  )[0];
  const subject = (await patientOf(repo, r, claimSystem)) ?? existing?.subject;
  const planType = r.get('paymentPlanTransactionType');
  const count = r.get('installmentCount');
  const plan: Basic = {
    resourceType: 'Basic',
    ...(existing && { id: existing.id }),
    identifier: [{ system: INSTAMED_PAYMENT_PLAN_SYSTEM, value: planId }],
    code: { coding: [{ system: RECORD_KIND_SYSTEM, code: 'payment-plan', display: 'Payment plan' }], text: 'InstaMed payment plan' },
    ...(subject && { subject }),
    ...((date ?? existing?.created) && { created: date ?? existing?.created }),
    extension: [
      ...(planType ? [{ url: PAYMENT_PLAN_TYPE_EXTENSION, valueString: planType.slice(0, 100) }] : []),
      ...(count && /^\d{1,4}$/.test(count) && Number(count) > 0 ? [{ url: PAYMENT_PLAN_INSTALLMENTS_EXTENSION, valuePositiveInt: Number(count) }] : []),
    ],
  };
  if (plan.extension!.length === 0) delete plan.extension;
  if (!existing) return { status: 'created', id: (await repo.createResource(plan)).id };
  const { meta: _meta, ...before } = existing;
  if (JSON.stringify(sorted(before)) === JSON.stringify(sorted(plan))) return { status: 'unchanged', id: existing.id! };
  return { status: 'updated', id: (await repo.updateResource(plan)).id };
}

function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, sorted(v)]));
  return value;
}

async function patientOf(repo: PostgresRepository, r: Reader, claimSystem: string | null): Promise<Reference | undefined> {
  const billId = r.billId();
  if (billId) {
    const system = claimSystem ?? (await claimIdSystem(repo.conn, repo.context.tenantId));
    const claims = await repo.searchResources<Claim>({
      resourceType: 'Claim',
      filters: [{ code: 'identifier', operator: Operator.EQUALS, value: `${escape(system)}|${escape(billId)}` }],
      count: 1,
    });
    if (claims[0]?.patient?.reference) return { reference: claims[0].patient.reference };
  }
  const patientId = r.get('patientId') ?? r.get('patientMrn');
  if (patientId) {
    const patients = await repo.searchResources<Patient>({
      resourceType: 'Patient',
      filters: [{ code: 'identifier', operator: Operator.EQUALS, value: escape(patientId) }],
      count: 2,
    });
    if (patients.length === 1) return { reference: `Patient/${patients[0].id}` };
  }
  return undefined;
}
