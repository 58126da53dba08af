import { Worker } from 'node:worker_threads';
import type { Config } from './config.ts';
import { openDatabase } from './db/index.ts';
import type { Database } from './db/index.ts';
import { FULL_ACCESS } from './fhir/access.ts';
import { PostgresRepository } from './fhir/repository.ts';
import type { Logger } from './logger.ts';
import { loadProfiles } from './profiles/index.ts';
import { startDeliveryWorker, subscriptionObserver } from './subscriptions/index.ts';
import type { DeliveryWorker } from './subscriptions/index.ts';

/**
 * Delivery's own pool on PostgreSQL (DELIVERY_POOL_SIZE): never waiting behind the API's requests
 * for a connection, and its single statements (claims, finishes) committing without waiting for
 * the WAL flush. Only delivery's bookkeeping runs on it; its transactions (a Subscription's status
 * written by the server) still wait for the flush.
 */
export function openDeliveryDatabase(config: Config): Promise<Database> {
  return openDatabase({
    databaseUrl: config.databaseUrl,
    schema: config.databaseSchema,
    dataDir: config.dataDir,
    poolSize: config.delivery.poolSize,
    asynchronousStatements: true,
  });
}

/** The delivery worker of this server's configuration, on `db`, in this thread. */
export async function startDelivery(config: Config, db: Database, logger: Logger): Promise<DeliveryWorker> {
  loadProfiles();
  const fhirBaseUrl = `${config.baseUrl ?? `http://localhost:${config.port}`}/fhir`;
  const observer = subscriptionObserver({ allowPrivateNetworks: config.outboundAllowPrivateNetworks });
  return startDeliveryWorker({
    db,
    logger: logger.child({ component: 'delivery' }),
    repositoryFor: (tenantId) => new PostgresRepository(db, { tenantId, baseUrl: fhirBaseUrl, access: FULL_ACCESS }, { observer }),
    fhirBaseUrl,
    retrySchedule: config.delivery.retrySchedule,
    allowPrivateNetworks: config.outboundAllowPrivateNetworks,
    concurrency: config.delivery.concurrency,
    runSize: config.delivery.runSize,
    pollIntervalMs: config.delivery.pollIntervalMs,
  });
}

/** What the delivery thread tells the thread that started it. */
export type DeliveryThreadMessage = { type: 'started' } | { type: 'stopped' } | { type: 'failed'; message: string };

/**
 * The delivery worker in a thread of its own, with its own connections (PostgreSQL only: the
 * embedded database belongs to one thread). On one event loop with the API, every step of a
 * delivery (its NOTIFY, its claim, its send, its finish) waited behind whatever requests were
 * being handled: at 200 writes/s a notification took 15 ms (p50) to 35 ms (p99) to reach its
 * receiver, most of it spent waiting for the loop, not for the database or the network.
 * `onLost` is called if the thread dies after it started (it should never: it catches its errors).
 */
export function startDeliveryThread(onLost: (err: Error) => void): Promise<DeliveryWorker> {
  const thread = new Worker(new URL('./delivery-thread.ts', import.meta.url));
  let stopping = false;
  return new Promise((resolve, reject) => {
    let started = false;
    let stopped: (() => void) | undefined;
    thread.on('message', (m: DeliveryThreadMessage) => {
      if (m.type === 'started') {
        started = true;
        resolve({
          stop: () =>
            new Promise<void>((done) => {
              stopping = true;
              stopped = done;
              thread.postMessage('stop');
            }),
        });
      } else if (m.type === 'stopped') stopped?.();
      else if (m.type === 'failed') reject(new Error(m.message));
    });
    thread.on('error', (err) => (started ? onLost(err) : reject(err)));
    thread.on('exit', (code) => {
      if (!started) reject(new Error(`the delivery thread exited (${code}) before it started`));
      else if (!stopping) onLost(new Error(`the delivery thread exited (${code})`));
      else stopped?.();
    });
  });
}
