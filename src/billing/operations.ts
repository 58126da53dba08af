import { OperationOutcomeError, allOk, badRequest, conflict, isResource } from '@medplum/core';
import type { FhirRepository, FhirRequest, FhirResponse, FhirRouter } from '@medplum/fhir-router';
import type { Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { FULL_ACCESS, assertAllowed } from '../fhir/access.ts';
import { notFoundError } from '../fhir/outcomes.ts';
import type { PostgresRepository } from '../fhir/repository.ts';
import { allocateCredit } from './credits.ts';
import { Money2 } from './money.ts';
import type { Amount } from './money.ts';
import type { Refusal } from './result.ts';

/**
 * Billing's FHIR operations, added to the FHIR router by app.ts:
 *   POST /fhir/PatientCredit/{id}/$allocate  Parameters {claim: valueReference, amount?: valueMoney | valueDecimal}
 * answers 200 with the updated PatientCredit (its new allocation entry last); refusals are
 * OperationOutcomes: 404 unknown credit or claim, 400 a bad parameter, an amount above the balance
 * or the open responsibility, a claim of another patient, nothing left to allocate.
 */
export function addBillingOperations(router: FhirRouter): void {
  router.add('POST', 'PatientCredit/:id/$allocate', allocate, 'operation');
}

async function allocate(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  const pg = repo as PostgresRepository;
  // The command writes with the server's access; the caller must be allowed to change the credit.
  assertAllowed(pg.context.access, 'PatientCredit', 'u');
  const { claim, value, currency } = parseParameters(req.body);
  const result = await allocateCredit(pg.withAccess(FULL_ACCESS), { creditId: req.params.id, claim, amount: value, ...(currency && { currency }) });
  if (!result.ok) throw refusalError(result);
  return [allOk, result.value.credit as unknown as Resource];
}

/** The amount as sent: allocateCredit rounds it to the tenant's book currency and checks its currency. */
function parseParameters(body: unknown): { claim: string; value: Amount | undefined; currency?: string } {
  if (!isResource(body, 'Parameters')) throw new OperationOutcomeError(badRequest('Send a Parameters resource with claim and, optionally, amount'));
  const params = (body as Parameters).parameter ?? [];
  const one = (name: string): ParametersParameter | undefined => {
    const found = params.filter((p) => p.name === name);
    if (found.length > 1) throw new OperationOutcomeError(badRequest(`Parameter ${name} is given more than once`, name));
    return found[0];
  };
  const claim: unknown = one('claim')?.valueReference?.reference;
  if (typeof claim !== 'string' || claim === '') throw new OperationOutcomeError(badRequest('Parameter claim (valueReference to a Claim) is required', 'claim'));
  const a = one('amount');
  if (!a) return { claim, value: undefined };
  const raw: unknown = a.valueMoney ? a.valueMoney.value : a.valueDecimal;
  const currency: unknown = a.valueMoney?.currency;
  if (typeof raw !== 'number' || !Number.isFinite(raw)) throw new OperationOutcomeError(badRequest('Parameter amount needs a valueMoney or valueDecimal', 'amount'));
  if (currency !== undefined && typeof currency !== 'string') throw new OperationOutcomeError(badRequest('amount.currency must be a currency code', 'amount'));
  // A JSON number's shortest round-trip form: the literal sent, for up to 15 significant digits.
  return { claim, value: new Money2(String(raw)), ...(currency && { currency }) };
}

function refusalError(r: Refusal): OperationOutcomeError {
  if (r.code === 'not-found') return notFoundError(r.message);
  if (r.code === 'conflict') return new OperationOutcomeError(conflict(r.message));
  return new OperationOutcomeError(badRequest(r.message, r.field));
}
