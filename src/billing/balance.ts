import { Operator } from '@medplum/core';
import type { SearchRequest } from '@medplum/core';
import type { Claim } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import type { PatientCredit } from '../profiles/index.ts';
import { account, creditBooks } from './books.ts';
import { lifecycleClaims, lifecycleIdOf, responsibilityOf } from './claims.ts';
import { Money2, ZERO, fixed, max, sum } from './money.ts';
import { bookCurrency } from './currency-store.ts';
import { accountBalance } from './store.ts';

/**
 * What a patient owes, has paid and has in credit, as billing computes it when it applies money:
 * per claim lifecycle the responsibility of its latest active ClaimResponse (claims.ts
 * responsibilityOf), what the ledger says is paid on it, and what is open (responsibility − paid,
 * never below zero); per PatientCredit its amount and balance from the ledger. Amounts are decimal
 * text, so no reader turns them into floats on the way. Reads only.
 */
export interface LifecycleBalance {
  lifecycleId: string;
  /** The lifecycle's live claims, newest first. */
  claims: { id: string; billIds: string[]; status: string; created?: string }[];
  /** The ClaimResponse the responsibility comes from; absent: not adjudicated yet (responsibility 0). */
  claimResponse?: string;
  responsibility: string;
  paid: string;
  open: string;
}

export interface PatientBalance {
  patient: string;
  currency: string;
  totals: { responsibility: string; paid: string; open: string; credit: string };
  lifecycles: LifecycleBalance[];
  credits: { id: string; status?: string; amount: string; balance: string }[];
}

/** Most claims and credits of one patient we read (a patient page, not a report). */
const MAX_PER_PATIENT = 1000;

export async function patientBalance(repo: PostgresRepository, patientRef: string): Promise<PatientBalance> {
  const { tenantId } = repo.context;
  const currency = await bookCurrency(repo.conn, tenantId);
  const claims = await repo.searchResources<Claim>({
    resourceType: 'Claim',
    filters: [{ code: 'patient', operator: Operator.EQUALS, value: patientRef }],
    count: MAX_PER_PATIENT,
  });
  const lifecycleIds = [...new Set(claims.filter((c) => c.status !== 'entered-in-error').map(lifecycleIdOf))];
  const lifecycles: LifecycleBalance[] = [];
  for (const id of lifecycleIds.sort()) {
    const members = (await lifecycleClaims(repo, id)).filter((c) => c.status !== 'entered-in-error');
    const owed = await responsibilityOf(repo, members, currency);
    const paid = await accountBalance(repo.conn, tenantId, account.lifecycle(id));
    lifecycles.push({
      lifecycleId: id,
      claims: members.map((c) => ({ id: c.id!, billIds: (c.identifier ?? []).map((i) => i.value ?? '').filter(Boolean), status: c.status, created: c.created })),
      ...(owed.claimResponse && { claimResponse: `ClaimResponse/${owed.claimResponse.id}` }),
      responsibility: fixed(owed.amount, currency),
      paid: fixed(paid, currency),
      open: fixed(max(ZERO, owed.amount.minus(paid)), currency),
    });
  }
  // PatientCredit is ours, not an R4 type: the repository's generic search types it as a Resource.
  const creditSearch = { resourceType: 'PatientCredit', filters: [{ code: 'patient', operator: Operator.EQUALS, value: patientRef }], count: MAX_PER_PATIENT };
  const creditResources = (await repo.searchResources(creditSearch as unknown as SearchRequest)) as unknown as PatientCredit[];
  const credits = [];
  for (const c of creditResources) {
    const books = await creditBooks(repo, c.id!);
    credits.push({ id: c.id!, status: c.status, amount: fixed(books.amount, currency), balance: fixed(books.balance, currency) });
  }
  const total = (values: string[]): string => fixed(sum(values.map((v) => new Money2(v))), currency);
  return {
    patient: patientRef,
    currency,
    totals: {
      responsibility: total(lifecycles.map((l) => l.responsibility)),
      paid: total(lifecycles.map((l) => l.paid)),
      open: total(lifecycles.map((l) => l.open)),
      credit: total(credits.map((c) => c.balance)),
    },
    lifecycles,
    credits,
  };
}
