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
import {
  NOTIFY_CHANNEL,
  claimDue,
  heartbeatsDue,
  markDead,
  markDelivered,
  queueSignal,
  recordAttempt,
  scheduleRetry,
  versionContent,
} from './store.ts';
import type { ClaimedNotification } from './store.ts';

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
  /** Resolves once nothing is due or in flight (for tests and the benchmark). */
  idle(): Promise<void>;
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
        const claimed = await claimDue(db, free, LEASE_SECONDS);
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

  async function deliver(n: ClaimedNotification): Promise<void> {
    const event = n.type === 'event-notification' ? await loadEvent(n) : undefined;
    const subscriptionUrl = `${options.fhirBaseUrl}/Subscription/${n.subscriptionId}`;
    const request = renderDelivery(n.type, { subscriptionUrl, status: n.status, config: n.config, eventsSinceStart: n.eventsCount }, event);
    const headers: Record<string, string> = Object.fromEntries(n.config.headers);
    if (n.config.secret) Object.assign(headers, signatureHeaders(n.config.signatureScheme, n.config.secret, n.webhookId, request.body));
    const result = await sendRequest(request, headers, n.config.timeoutMs, options.allowPrivateNetworks);
    await recordAttempt(db, n, { httpStatus: result.status, latencyMs: result.latencyMs, error: result.error });

    if (result.status !== undefined && result.status >= 200 && result.status < 300) {
      await markDelivered(db, n);
      if (n.type === 'handshake') await setSubscriptionStatus(n, 'active');
      return;
    }
    const problem = describe(result);
    const schedule = n.config.retrySchedule ?? options.retrySchedule;
    const maxAttempts = n.config.maxAttempts ?? schedule.length + 1;
    if (isRetryable(result.status) && n.attempts < maxAttempts) {
      await scheduleRetry(db, n, retryDelayMs(schedule, n.attempts, parseRetryAfter(result.retryAfter)), problem);
      return;
    }
    logger.warn({ subscription: n.subscriptionId, seq: n.seq, attempts: n.attempts, problem }, 'notification dead-lettered');
    await markDead(db, n, problem);
    await setSubscriptionStatus(n, 'error', `Delivery failed after ${n.attempts} attempt(s): ${problem}`);
  }

  async function loadEvent(n: ClaimedNotification): Promise<NotificationEvent> {
    const content = await versionContent(db, n.tenantId, n.resourceType!, n.resourceId!, n.versionId!);
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
    async idle() {
      for (;;) {
        await Promise.allSettled([...inFlightDone]);
        if (inFlight === 0 && !running) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

function describe(result: HttpResult): string {
  return result.status !== undefined ? `HTTP ${result.status}` : (result.error ?? 'unknown error');
}
