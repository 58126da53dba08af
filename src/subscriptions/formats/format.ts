import type { PostgresRepository } from '../../fhir/repository.ts';
import type { NotificationEvent, OutboundRequest, StatusContext } from '../render.ts';
import type { SignatureScheme } from '../sign.ts';
import type { SubscriptionConfig } from '../definition.ts';
import type { NotificationType } from '../store.ts';

/** One queued notification as a payload format sees it: its type, and the event it is about. */
export interface FormatNotification {
  type: NotificationType;
  /** Present for event-notifications; its `resource` is loaded for every format but fhir's id-only. */
  event?: NotificationEvent;
}

export interface FormatContext extends StatusContext {
  /** A server repository inside the subscription's tenant: what a sender-shaped body is rendered from. */
  repository: PostgresRepository;
}

/**
 * The shape of notification bodies, chosen by a Subscription's `subscription-payload-format`
 * extension: `fhir` (R4 rest-hook and Backport bundles) or a sender's own shape, so that partners
 * who take a claims platform's or a health fund's webhooks can take ours unchanged.
 *
 * `render` gives the requests one notification becomes, sent in order as one attempt (a failure
 * retries all of them: receivers see at-least-once, as with any notification). None: the
 * notification is not one this format reports (a handshake, or a change that is no event of the
 * sender's), and it is marked delivered without sending. Format files may import types from
 * definition.ts, never values: definition.ts imports this registry.
 */
export interface PayloadFormat {
  code: string;
  /** The scheme its bodies are signed with, whatever the Subscription says (e.g. x-curacel-signature). */
  signatureScheme?: SignatureScheme;
  /** Whether `event.resource` is needed (loaded from the outbox's version). */
  needsResource(ctx: StatusContext): boolean;
  render(notification: FormatNotification, ctx: FormatContext): Promise<OutboundRequest[]>;
  /** How many consecutive events one notification of this subscription may carry; absent: 1. */
  maxEvents?(config: SubscriptionConfig): number;
  /** Several events (in order) as one notification; required when maxEvents can exceed 1. */
  renderEvents?(events: NotificationEvent[], ctx: FormatContext): Promise<OutboundRequest[]>;
}
