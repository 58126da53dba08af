import { randomUUID } from 'node:crypto';
import { OperationOutcomeError, allOk, badRequest } from '@medplum/core';
import type { FhirRepository, FhirRequest, FhirResponse, FhirRouter } from '@medplum/fhir-router';
import type { Bundle, Resource, Subscription } from '@medplum/fhirtypes';
import { assertAllowed } from '../fhir/access.ts';
import type { PostgresRepository } from '../fhir/repository.ts';
import { notFoundError } from '../fhir/outcomes.ts';
import { notificationBundle, subscriptionStatus } from './render.ts';
import type { NotificationEvent, StatusContext } from './render.ts';
import { eventsInRange, fanOutAllEvents, getRegistry, requeueDead } from './store.ts';
import { SUBSCRIPTION_TOPICS, topicResource } from './topics.ts';

/**
 * Subscription operations of the Backport IG ($status, $events, $resend) and the topics as
 * readable resources, added to the FHIR router by app.ts.
 */
export function addSubscriptionOperations(router: FhirRouter): void {
  router.add('GET', 'Subscription/:id/$status', status, 'operation');
  router.add('GET', 'Subscription/:id/$events', events, 'operation');
  router.add('POST', 'Subscription/:id/$events', events, 'operation');
  router.add('POST', 'Subscription/:id/$resend', resend, 'operation');
  router.add('GET', 'SubscriptionTopic', listTopics, 'search-type');
  router.add('GET', 'SubscriptionTopic/:id', readTopic, 'read');
}

/** The subscription (read through the repository, so tenant and scopes apply) and its registry row. */
async function load(req: FhirRequest, repo: FhirRepository): Promise<{ pg: PostgresRepository; ctx: StatusContext }> {
  const pg = repo as PostgresRepository;
  const sub = await pg.readResource<Subscription>('Subscription', req.params.id);
  // Committed writes whose events delivery has not numbered yet count too: number them now.
  await fanOutAllEvents(pg.conn);
  const row = await getRegistry(pg.conn, pg.context.tenantId, sub.id);
  if (!row) throw new OperationOutcomeError(badRequest(`Subscription/${sub.id} is not deliverable (status ${sub.status})`));
  const ctx = {
    subscriptionUrl: `${pg.context.baseUrl}/Subscription/${sub.id}`,
    status: sub.status,
    config: row.config,
    eventsSinceStart: row.eventsCount,
  };
  return { pg, ctx };
}

async function status(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  const { ctx } = await load(req, repo);
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    total: 1,
    entry: [{ resource: subscriptionStatus(randomUUID(), 'query-status', ctx, []), search: { mode: 'match' } }],
  };
  return [allOk, bundle];
}

/** `$events`: replays stored events by number (eventsSinceNumber..eventsUntilNumber, at most 1000). */
async function events(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  const { pg, ctx } = await load(req, repo);
  const param = (name: string): string | undefined => {
    const fromQuery = req.query[name];
    if (fromQuery !== undefined) return Array.isArray(fromQuery) ? fromQuery[0] : fromQuery;
    const fromBody = (req.body as { parameter?: { name: string; valueString?: string; valueInteger?: number; valueCode?: string }[] })?.parameter;
    const p = fromBody?.find((x) => x.name === name);
    return p && String(p.valueString ?? p.valueInteger ?? p.valueCode);
  };
  const since = Number(param('eventsSinceNumber') ?? 1);
  const until = Number(param('eventsUntilNumber') ?? ctx.eventsSinceStart);
  if (!Number.isInteger(since) || !Number.isInteger(until) || since < 1) {
    throw new OperationOutcomeError(badRequest('eventsSinceNumber and eventsUntilNumber must be positive integers'));
  }
  const content = param('content');
  if (content && !['empty', 'id-only', 'full-resource'].includes(content)) {
    throw new OperationOutcomeError(badRequest(`Unknown content '${content}'`));
  }
  // Replayed events reveal the resources they are about: the caller must be allowed to read them.
  assertAllowed(pg.context.access, ctx.config.resourceType, 'r');
  const replayCtx = content ? { ...ctx, config: { ...ctx.config, content: content as StatusContext['config']['content'] } } : ctx;
  const withContent = replayCtx.config.content === 'full-resource';
  const stored = await eventsInRange(pg.conn, pg.context.tenantId, req.params.id, { from: since, to: until, withContent });
  const replay: NotificationEvent[] = stored.map(({ content, ...e }) => ({
    ...e,
    ...(content && { resource: JSON.parse(content) as Resource }),
  }));
  return [allOk, notificationBundle('query-event', replayCtx, replay)];
}

/**
 * `$resend`: dead-lettered notifications go back to the queue, in order, and a subscription in
 * error is requested again (classic ones become active at once, backport ones after a handshake).
 */
async function resend(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  const pg = repo as PostgresRepository;
  const sub = await pg.readResource<Subscription>('Subscription', req.params.id);
  const requeued = await pg.withTransaction(async (tx) => {
    const n = await requeueDead(tx.conn, pg.context.tenantId, sub.id);
    if (sub.status === 'error') {
      const { error: _error, ...rest } = sub;
      await tx.updateResource<Subscription>({ ...rest, status: 'requested' });
    }
    return n;
  });
  return [
    allOk,
    {
      resourceType: 'Parameters',
      parameter: [{ name: 'requeued', valueInteger: requeued }],
    },
  ];
}

async function listTopics(): Promise<FhirResponse> {
  const bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    total: SUBSCRIPTION_TOPICS.length,
    entry: SUBSCRIPTION_TOPICS.map((t) => ({ resource: topicResource(t), search: { mode: 'match' } })),
  } as unknown as Bundle;
  return [allOk, bundle];
}

async function readTopic(req: FhirRequest): Promise<FhirResponse> {
  const topic = SUBSCRIPTION_TOPICS.find((t) => t.name === req.params.id);
  if (!topic) throw notFoundError(`No subscription topic '${req.params.id}'`);
  return [allOk, topicResource(topic) as unknown as Resource];
}
