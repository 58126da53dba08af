import type { Resource, Subscription } from '@medplum/fhirtypes';
import type { Database } from '../db/index.ts';
import type { PostgresRepository } from '../fhir/repository.ts';
import type { Logger } from '../logger.ts';
import { sendRequest } from './http.ts';
import type { HttpResult } from './http.ts';
import { renderDelivery } from './render.ts';
import type { NotificationEvent } from './render.ts';
import { isRetryable, parseRetryAfter, retryDelayMs } from './retry.ts';
import { signatureHeaders } from './sign.ts';
import { NOTIFY_CHANNEL, claimDue, finishAttempt, heartbeatsDue, queueSignal, versionContent } from './store.ts';
import type { AttemptOutcome, ClaimedNotification } from './store.ts';

export interface WorkerOptions {
  db: Database;
  logger: Logger;
  /** A repository acting for the server inside a tenant (to move Subscription.status). */
  repositoryFor: (tenantId: string) => PostgresRepository;
  /** Absolute base of the FHIR API, for references in notifications. */
  fhirBaseUrl: string;
  retrySchedule: number[];
  allowPrivateNetworks: boolean;
  concurrency: number;
  pollIntervalMs: number;
}

export interface DeliveryWorker {
  stop(): Promise<void>;
}

/** Longer than the longest attempt (timeouts are capped at 60 s), so a live worker keeps its claim. */
const LEASE_SECONDS = 90;

/**
 * Delivers queued notifications. Woken by NOTIFY when a write commits, with polling as the
 * fallback (and for retries coming due). Any number of workers may run, in any processes.
 */
export async function startDeliveryWorker(options: WorkerOptions): Promise<DeliveryWorker> {
  const { db, logger } = options;
  let inFlight = 0;
  let running = false;
  let again = false;
  let stopped = false;
  const inFlightDone = new Set<Promise<void>>();

  async function pump(): Promise<void> {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const free = options.concurrency - inFlight;
        if (free <= 0) break;
        // A lost lease only means a later claim: no need to wait for the WAL flush.
        const claimed = await db.transaction((tx) => claimDue(tx, free, LEASE_SECONDS), { synchronousCommit: false });
        for (const n of claimed) {
          inFlight++;
          const p = deliver(n)
            .catch((err) => logger.error({ err, subscription: n.subscriptionId, seq: n.seq }, 'delivery failed unexpectedly'))
            .finally(() => {
              inFlight--;
              inFlightDone.delete(p);
              void pump();
            });
          inFlightDone.add(p);
        }
        if (claimed.length === free) again = true;
      } while (again && !stopped);
    } catch (err) {
      logger.error({ err }, 'claiming notifications failed');
    } finally {
      running = false;
    }
  }

  /** Delivers `first`, then whatever its subscription has next, one at a time, in order. */
  async function deliver(first: ClaimedNotification): Promise<void> {
    for (let n: ClaimedNotification | undefined = first; n && !stopped; ) n = await deliverOne(n);
  }

  async function deliverOne(n: ClaimedNotification): Promise<ClaimedNotification | undefined> {
    const event = n.type === 'event-notification' ? await loadEvent(n) : undefined;
    const subscriptionUrl = `${options.fhirBaseUrl}/Subscription/${n.subscriptionId}`;
    const request = renderDelivery(n.type, { subscriptionUrl, status: n.status, config: n.config, eventsSinceStart: n.eventsCount }, event);
    const headers: Record<string, string> = Object.fromEntries(n.config.headers);
    if (n.config.secret) Object.assign(headers, signatureHeaders(n.config.signatureScheme, n.config.secret, n.webhookId, request.body));
    const result = await sendRequest(request, headers, n.config.timeoutMs, options.allowPrivateNetworks);
    const outcome = decide(n, result);
    const attempt = { httpStatus: result.status, latencyMs: result.latencyMs, error: result.error };
    // Losing this mark in a crash means one more delivery of a notification receivers dedupe by
    // webhook-id (at-least-once), so the commit need not wait for the WAL flush.
    const next = await db.transaction((tx) => finishAttempt(tx, n, attempt, outcome, LEASE_SECONDS), { synchronousCommit: false });
    if (outcome.next === 'delivered' && n.type === 'handshake') await setSubscriptionStatus(n, 'active');
    if (outcome.next === 'dead') {
      logger.warn({ subscription: n.subscriptionId, seq: n.seq, attempts: n.attempts, problem: outcome.error }, 'notification dead-lettered');
      await setSubscriptionStatus(n, 'error', `Delivery failed after ${n.attempts} attempt(s): ${outcome.error}`);
    }
    return next;
  }

  /** Delivered on 2xx; retried on network errors, timeouts, 408, 429 and 5xx while attempts remain; else dead. */
  function decide(n: ClaimedNotification, result: HttpResult): AttemptOutcome {
    if (result.status !== undefined && result.status >= 200 && result.status < 300) return { next: 'delivered' };
    const error = describe(result);
    const schedule = n.config.retrySchedule ?? options.retrySchedule;
    const maxAttempts = n.config.maxAttempts ?? schedule.length + 1;
    if (isRetryable(result.status) && n.attempts < maxAttempts) {
      return { next: 'retry', delayMs: retryDelayMs(schedule, n.attempts, parseRetryAfter(result.retryAfter)), error };
    }
    return { next: 'dead', error };
  }

  async function loadEvent(n: ClaimedNotification): Promise<NotificationEvent> {
    // Only full-resource payloads carry the resource; the others need no read.
    const needsContent = n.config.content === 'full-resource' && n.interaction !== 'delete';
    const content = needsContent ? await versionContent(db, n.tenantId, n.resourceType!, n.resourceId!, n.versionId!) : undefined;
    return {
      eventNumber: n.eventNumber!,
      occurredAt: n.occurredAt,
      resourceType: n.resourceType!,
      resourceId: n.resourceId!,
      interaction: n.interaction!,
      ...(content && n.interaction !== 'delete' && { resource: JSON.parse(content) as Resource }),
    };
  }

  async function setSubscriptionStatus(n: ClaimedNotification, status: 'active' | 'error', error?: string): Promise<void> {
    const repo = options.repositoryFor(n.tenantId);
    try {
      const sub = await repo.readResource<Subscription>('Subscription', n.subscriptionId);
      if (sub.status === status && sub.error === error) return;
      const { error: _old, ...rest } = sub;
      await repo.updateResource<Subscription>({ ...rest, status, ...(error && { error }) });
    } catch (err) {
      logger.error({ err, subscription: n.subscriptionId, status }, 'could not update Subscription status');
    }
  }

  async function queueHeartbeats(): Promise<void> {
    try {
      for (const { tenantId, id } of await heartbeatsDue(db)) {
        await db.transaction((tx) => queueSignal(tx, tenantId, id, 'heartbeat'));
      }
    } catch (err) {
      logger.error({ err }, 'queueing heartbeats failed');
    }
  }

  const unlisten = await db.listen(NOTIFY_CHANNEL, () => void pump());
  const poll = setInterval(() => void pump(), options.pollIntervalMs);
  const heartbeat = setInterval(() => void queueHeartbeats(), Math.max(options.pollIntervalMs, 1000));
  void pump();
  logger.info({ concurrency: options.concurrency }, 'delivery worker started');

  return {
    async stop() {
      stopped = true;
      clearInterval(poll);
      clearInterval(heartbeat);
      await unlisten();
      await Promise.allSettled([...inFlightDone]);
    },
  };
}

function describe(result: HttpResult): string {
  return result.status !== undefined ? `HTTP ${result.status}` : (result.error ?? 'unknown error');
}
