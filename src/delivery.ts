import { Worker } from 'node:worker_threads';
import type { Config } from './config.ts';
import { openDatabase } from './db/index.ts';
import type { Database } from './db/index.ts';
import { FULL_ACCESS } from './fhir/access.ts';
import { PostgresRepository } from './fhir/repository.ts';
import type { Logger } from './logger.ts';
import { loadProfiles } from './profiles/index.ts';
import { moveSubscriptionStatus, startDeliveryWorker, subscriptionObserver } from './subscriptions/index.ts';
import type { DeliveryWorker, MoveSubscription } from './subscriptions/index.ts';

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

/** Absolute base of the FHIR API, for references in notifications and the server's repositories. */
const fhirBaseUrl = (config: Config): string => `${config.baseUrl ?? `http://localhost:${config.port}`}/fhir`;

/** A repository acting for the server inside a tenant, with Subscriptions' observer. */
export function serverRepositories(config: Config, db: Database): (tenantId: string) => PostgresRepository {
  const baseUrl = fhirBaseUrl(config);
  const observer = subscriptionObserver({ allowPrivateNetworks: config.outboundAllowPrivateNetworks });
  return (tenantId) => new PostgresRepository(db, { tenantId, baseUrl, access: FULL_ACCESS }, { observer });
}

/**
 * The delivery worker of this server's configuration, on `db`, in this thread. `moveSubscription`:
 * how Subscription resources are moved (by default here, through a repository).
 */
export async function startDelivery(config: Config, db: Database, logger: Logger, moveSubscription?: MoveSubscription): Promise<DeliveryWorker> {
  const repositories = serverRepositories(config, db);
  if (!moveSubscription) loadProfiles();
  return startDeliveryWorker({
    db,
    logger: logger.child({ component: 'delivery' }),
    // In the delivery thread the R4 definitions (about 50 MB) are read only if a payload format
    // needs the repository (Curacel's read and search); Subscriptions are moved by the main thread.
    repositoryFor: (tenantId) => {
      loadProfiles();
      return repositories(tenantId);
    },
    moveSubscription: moveSubscription ?? moveSubscriptionStatus(repositories),
    fhirBaseUrl: fhirBaseUrl(config),
    retrySchedule: config.delivery.retrySchedule,
    allowPrivateNetworks: config.outboundAllowPrivateNetworks,
    concurrency: config.delivery.concurrency,
    runSize: config.delivery.runSize,
    pollIntervalMs: config.delivery.pollIntervalMs,
  });
}

/** What the delivery thread tells the thread that started it. */
export type FromDeliveryThread =
  | { type: 'started' }
  | { type: 'stopped' }
  | { type: 'failed'; message: string }
  | { type: 'move'; id: number; tenantId: string; subscriptionId: string; status: 'active' | 'error'; error?: string };

/** What the starting thread tells the delivery thread. */
export type ToDeliveryThread = { type: 'stop' } | { type: 'moved'; id: number; failure?: string };

/**
 * The delivery worker in a thread of its own, with its own connections (PostgreSQL only: the
 * embedded database belongs to one thread). On one event loop with the API, every step of a
 * delivery (its NOTIFY, its claim, its send, its finish) waited behind whatever requests were
 * being handled: at 200 writes/s a notification took 15 ms (p50) to 35 ms (p99) to reach its
 * receiver, most of it spent waiting for the loop, not for the database or the network.
 * The thread asks this one to move Subscriptions (`moveSubscription`), so that it need not load
 * the definitions that validation needs. `onLost` is called if the thread dies after it started.
 */
export function startDeliveryThread(moveSubscription: MoveSubscription, onLost: (err: Error) => void): Promise<DeliveryWorker> {
  const thread = new Worker(new URL('./delivery-thread.ts', import.meta.url));
  const tell = (m: ToDeliveryThread): void => thread.postMessage(m);
  let stopping = false;
  return new Promise((resolve, reject) => {
    let started = false;
    let stopped: (() => void) | undefined;
    thread.on('message', (m: FromDeliveryThread) => {
      switch (m.type) {
        case 'started':
          started = true;
          resolve({
            stop: () =>
              new Promise<void>((done) => {
                stopping = true;
                stopped = done;
                tell({ type: 'stop' });
              }),
          });
          break;
        case 'move':
          moveSubscription(m.tenantId, m.subscriptionId, m.status, m.error).then(
            () => tell({ type: 'moved', id: m.id }),
            (err: unknown) => tell({ type: 'moved', id: m.id, failure: err instanceof Error ? err.message : String(err) }),
          );
          break;
        case 'stopped':
          stopped?.();
          break;
        case 'failed':
          reject(new Error(m.message));
          break;
      }
    });
    thread.on('error', (err) => (started ? onLost(err) : reject(err)));
    thread.on('exit', (code) => {
      if (!started) reject(new Error(`the delivery thread exited (${code}) before it started`));
      else if (!stopping) onLost(new Error(`the delivery thread exited (${code})`));
      else stopped?.();
    });
  });
}
