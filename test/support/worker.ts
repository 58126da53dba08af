import { FULL_ACCESS } from '../../src/fhir/access.ts';
import { PostgresRepository } from '../../src/fhir/repository.ts';
import { createLogger } from '../../src/logger.ts';
import { startDeliveryWorker, subscriptionObserver } from '../../src/subscriptions/index.ts';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import type { Database } from '../../src/db/index.ts';
import { claimRuns } from '../../src/subscriptions/runs.ts';
import type { Run } from '../../src/subscriptions/runs.ts';
import { fanOutAllEvents } from '../../src/subscriptions/store.ts';

/** The real delivery worker on the test database, with short retry delays. */
export function startTestWorker(db: Database, options: { retrySchedule?: number[]; pollIntervalMs?: number; leaseSeconds?: number; runSize?: number; concurrency?: number } = {}): Promise<DeliveryWorker> {
  const fhirBaseUrl = 'http://fhir-billing.test/fhir';
  const observer = subscriptionObserver({ allowPrivateNetworks: true });
  return startDeliveryWorker({
    db,
    logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
    repositoryFor: (tenantId) => new PostgresRepository(db, { tenantId, baseUrl: fhirBaseUrl, access: FULL_ACCESS }, { observer }),
    fhirBaseUrl,
    retrySchedule: options.retrySchedule ?? [50, 50, 50],
    allowPrivateNetworks: true,
    concurrency: options.concurrency ?? 8,
    pollIntervalMs: options.pollIntervalMs ?? 50,
    ...(options.leaseSeconds !== undefined && { leaseSeconds: options.leaseSeconds }),
    ...(options.runSize !== undefined && { runSize: options.runSize }),
  });
}

/**
 * One claim as a worker makes it after a write's NOTIFY, with no worker running: the committed
 * writes' events fanned out, then up to 10 runs of 100 leased for `leaseSeconds`.
 */
export async function claimAsAWorkerWould(t: { db: Database }, leaseSeconds: number): Promise<Run[]> {
  await fanOutAllEvents(t.db);
  return t.db.transaction((tx) => claimRuns(tx, 10, 100, leaseSeconds));
}
