import type { Resource } from '@medplum/fhirtypes';
import type { Database } from '../db/index.ts';
import type { PostgresRepository } from '../fhir/repository.ts';
import type { Logger } from '../logger.ts';
import { PAYLOAD_FORMATS } from './formats/index.ts';
import { sendRequest } from './http.ts';
import type { HttpResult } from './http.ts';
import type { NotificationEvent, OutboundRequest } from './render.ts';
import { isRetryable, parseRetryAfter, retryDelayMs } from './retry.ts';
import type { AttemptOutcome, Attempted, ClaimedNotification, Run } from './runs.ts';
import { signatureHeaders } from './sign.ts';
import { versionContent } from './store.ts';

export interface SenderOptions {
  db: Database;
  logger: Logger;
  /** A repository acting for the server inside a tenant (to move Subscription.status, to render formats). */
  repositoryFor: (tenantId: string) => PostgresRepository;
  /** Absolute base of the FHIR API, for references in notifications. */
  fhirBaseUrl: string;
  retrySchedule: number[];
  allowPrivateNetworks: boolean;
}

type SendResult = HttpResult & { nothingToSend?: true };

/**
 * Sends a leased run, in order: each notification on its own, or, where the subscription's format
 * takes several events in one notification (a Backport bundle under `backport-max-count`),
 * consecutive events together. The first notification not delivered ends the run (the ones behind
 * it wait), as does the worker stopping or the lease being abandoned.
 */
export function createSender(options: SenderOptions) {
  const { db, logger } = options;

  async function sendRun(run: Run, abandon: AbortSignal, stopping: () => boolean): Promise<Attempted[]> {
    const attempted: Attempted[] = [];
    for (const group of groups(run)) {
      if (abandon.aborted || stopping()) break;
      const result = await send(group, abandon);
      const head = group[0];
      // Abandoned for want of a lease is our failure, not the receiver's: try again as soon as may be.
      const outcome: AttemptOutcome = result.nothingToSend
        ? { next: 'delivered' }
        : abandon.aborted
          ? { next: 'retry', delayMs: 0, error: describe(result) }
          : decide(head, result);
      const recorded = { httpStatus: result.status, latencyMs: result.latencyMs, error: result.error };
      attempted.push({ seqs: group.map((n) => n.seq), result: recorded, outcome });
      if (outcome.next !== 'delivered') break;
    }
    return attempted;
  }

  /**
   * The run cut into notifications: consecutive events up to the format's maximum per notification.
   * Consecutive in seq as well (a run can skip delivered rows after a $resend), so that a request's
   * attempt row names what it carried by its first and last seq.
   */
  function groups(run: Run): ClaimedNotification[][] {
    const n0 = run[0];
    const format = PAYLOAD_FORMATS[n0.config.payloadFormat] ?? PAYLOAD_FORMATS.fhir;
    const max = format.maxEvents?.(n0.config) ?? 1;
    const out: ClaimedNotification[][] = [];
    for (const n of run) {
      const last = out.at(-1);
      const joins = last && n.type === 'event-notification' && last[0].type === 'event-notification' && last.length < max && n.seq === last.at(-1)!.seq + 1;
      if (joins) last.push(n);
      else out.push([n]);
    }
    return out;
  }

  /**
   * The notification in its subscription's payload format: each request it becomes, signed over
   * the exact bytes sent, in order; the first failure is the attempt's result. A format that
   * renders nothing (not an event it reports) is a success with nothing sent.
   */
  async function send(group: ClaimedNotification[], abandon: AbortSignal): Promise<SendResult> {
    const n = group[0];
    const format = PAYLOAD_FORMATS[n.config.payloadFormat] ?? PAYLOAD_FORMATS.fhir;
    const ctx = { subscriptionUrl: `${options.fhirBaseUrl}/Subscription/${n.subscriptionId}`, status: n.status, config: n.config, eventsSinceStart: n.eventsCount };
    let requests: OutboundRequest[];
    try {
      const full = { ...ctx, repository: options.repositoryFor(n.tenantId) };
      if (group.length > 1) {
        const events = await Promise.all(group.map((e) => loadEvent(e, format.needsResource(ctx))));
        requests = await format.renderEvents!(events, full);
      } else {
        const event = n.type === 'event-notification' ? await loadEvent(n, format.needsResource(ctx)) : undefined;
        requests = await format.render({ type: n.type, event }, full);
      }
    } catch (err) {
      logger.warn({ err, subscription: n.subscriptionId, seq: n.seq, format: format.code }, 'rendering a notification failed');
      return { latencyMs: 0, error: `rendering the ${format.code} payload failed: ${(err as Error).message}` };
    }
    if (requests.length === 0) return { latencyMs: 0, nothingToSend: true };
    const scheme = format.signatureScheme ?? n.config.signatureScheme;
    // One event keeps its own webhook-id; several are a notification of their own, named by the
    // first and how many (the same group sent again is the same id; a different cut is another).
    const webhookId = group.length === 1 ? n.webhookId : `${n.webhookId}_${group.length}`;
    let result: HttpResult = { latencyMs: 0 };
    let latencyMs = 0;
    for (const request of requests) {
      const headers: Record<string, string> = Object.fromEntries(n.config.headers);
      if (n.config.secret) Object.assign(headers, signatureHeaders(scheme, n.config.secret, webhookId, request.body));
      result = await sendRequest(request, headers, n.config.timeoutMs, options.allowPrivateNetworks, abandon);
      latencyMs += result.latencyMs;
      if (result.status === undefined || result.status < 200 || result.status >= 300) break;
    }
    return { ...result, latencyMs };
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

  async function loadEvent(n: ClaimedNotification, needsResource: boolean): Promise<NotificationEvent> {
    // Only payloads that carry or render from the resource need the read.
    const needsContent = needsResource && n.interaction !== 'delete';
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

  return { sendRun };
}

function describe(result: HttpResult): string {
  return result.status !== undefined ? `HTTP ${result.status}` : (result.error ?? 'unknown error');
}
