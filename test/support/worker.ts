import { FULL_ACCESS } from '../../src/fhir/access.ts';
import { PostgresRepository } from '../../src/fhir/repository.ts';
import { createLogger } from '../../src/logger.ts';
import { startDeliveryWorker, subscriptionObserver } from '../../src/subscriptions/index.ts';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import type { Database } from '../../src/db/index.ts';

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
