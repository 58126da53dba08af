import { OperationOutcomeError, matchesSearchRequest } from '@medplum/core';
import type { Resource, ResourceType, Subscription } from '@medplum/fhirtypes';
import type { Queryable } from '../db/index.ts';
import { FULL_ACCESS, assertAllowed } from '../fhir/access.ts';
import type { ChangeObserver, ResourceChange } from '../fhir/change-observer.ts';
import { selectCurrent } from '../fhir/storage.ts';
import { parseSubscription } from './definition.ts';
import { concealSecrets, restoreSecret, showSecretInAnswer } from './secrets.ts';
import type { SubscriptionConfig } from './definition.ts';
import { subscriptionsCollectingFor, deleteRegistry, queueEvents, queueSignal, upsertRegistry } from './store.ts';
import type { RegistryStatus } from './store.ts';
import { OutboundUrlError, assertPublicEndpoint } from '../net/url-guard.ts';

export interface ObserverOptions {
  allowPrivateNetworks: boolean;
}

/**
 * Subscriptions' side of every write, run in the write's own transaction:
 * - a Subscription write keeps the registry in step (and starts a backport handshake);
 * - any other write queues a numbered notification for each active subscription it matches.
 */
export function subscriptionObserver(options: ObserverOptions): ChangeObserver {
  return {
    async prepare(written: Resource, { conn, tenantId, access }): Promise<Resource> {
      if (written.resourceType !== 'Subscription') return written;
      const resource = await restoreSecret(conn, tenantId, written as Subscription);
      const asked = access === FULL_ACCESS ? resource : await activeAsRequested(conn, tenantId, resource);
      const prepared = await moveOn(asked, options);
      // A write that kept the stored secret (sent the mask) is never shown it, even next to a value it sent.
      return resource === written ? showSecretInAnswer(prepared) : prepared;
    },

    conceal: (resource) => concealSecrets(resource),

    async plan(conn: Queryable, change: ResourceChange) {
      const { resource, tenantId } = change;
      if (resource.resourceType === 'Subscription') return planSubscriptionWrite(change);
      const candidates = await subscriptionsCollectingFor(conn, tenantId, resource.resourceType);
      const matching = candidates.filter((s) => matches(s.config, change));
      if (matching.length === 0) return undefined;
      return (tx: Queryable) =>
        queueEvents(tx, tenantId, matching, {
          resourceType: resource.resourceType,
          resourceId: resource.id!,
          versionId: change.versionId,
          interaction: change.interaction,
        });
    },
  };
}

/**
 * Only the server switches delivery on. A client writing `active` on a Subscription that is not
 * active yet, or that moves its endpoint, is asking for it: read as `requested`, so the endpoint is
 * checked and a Backport subscription shakes hands first (refusing it instead would break clients,
 * Medplum's among them, that create subscriptions `active`). Keeping an active one active, on the
 * same endpoint, changes nothing.
 */
async function activeAsRequested(conn: Queryable, tenantId: string, sub: Subscription): Promise<Subscription> {
  if (sub.status !== 'active') return sub;
  const current = sub.id ? await selectCurrent(conn, { tenantId, resourceType: 'Subscription', id: sub.id }) : undefined;
  const stored = current && !current.deleted ? (JSON.parse(current.content) as Subscription) : undefined;
  if (stored?.status === 'active' && stored.channel?.endpoint === sub.channel?.endpoint) return sub;
  return { ...sub, status: 'requested' };
}

/**
 * The server, not the client, moves a requested subscription on: classic ones to active at once,
 * backport ones after their handshake; either to error if the endpoint is refused.
 */
async function moveOn(resource: Subscription, options: ObserverOptions): Promise<Subscription> {
  if (resource.status !== 'requested') return resource;
  const config = parseSubscription(resource);
  try {
    await assertPublicEndpoint(config.endpoint, options.allowPrivateNetworks);
  } catch (err) {
    if (!(err instanceof OutboundUrlError)) throw err;
    return { ...resource, status: 'error', error: err.message };
  }
  return config.kind === 'classic' ? { ...resource, status: 'active', error: undefined } : resource;
}

function matches(config: SubscriptionConfig, change: ResourceChange): boolean {
  if (!config.interactions.includes(change.interaction)) return false;
  return matchesSearchRequest(change.resource, { resourceType: config.resourceType as ResourceType, filters: config.filters });
}

function planSubscriptionWrite(change: ResourceChange): (tx: Queryable) => Promise<void> {
  const sub = change.resource as Subscription;
  const { tenantId } = change;
  if (change.interaction === 'delete') return (tx) => deleteRegistry(tx, tenantId, sub.id!);
  let config: SubscriptionConfig;
  try {
    config = parseSubscription(sub);
  } catch (err) {
    // A Subscription that no longer parses (e.g. its topic was withdrawn) stops matching rather
    // than failing the server's own writes (status changes) or a client's turning it off. A client
    // asking for delivery (requested, or active written directly) is refused: it would never deliver.
    const asksForDelivery = sub.status === 'requested' || (sub.status === 'active' && change.access !== FULL_ACCESS);
    if (!(err instanceof OperationOutcomeError) || asksForDelivery) throw err;
    return (tx) => deleteRegistry(tx, tenantId, sub.id!);
  }
  // Notifications carry what the criteria match, so their owner must be allowed to search and read it.
  assertAllowed(change.access, config.resourceType, 's');
  assertAllowed(change.access, config.resourceType, 'r');
  const status = (sub.status ?? 'off') as RegistryStatus;
  return async (tx) => {
    await upsertRegistry(tx, tenantId, sub.id!, status, config);
    if (config.kind === 'backport' && status === 'requested') await queueSignal(tx, tenantId, sub.id!, 'handshake');
  };
}
