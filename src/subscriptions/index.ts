/** Subscriptions: match writes in their transaction, queue, render, sign and deliver. */
export { subscriptionObserver } from './observer.ts';
export { addSubscriptionOperations } from './operations.ts';
export { moveSubscriptionStatus, startDeliveryWorker } from './worker.ts';
export type { DeliveryWorker, MoveSubscription } from './worker.ts';
export { closeAgents } from './http.ts';
export { parseSchedule } from './retry.ts';
export { REDACTED_SECRET, concealAnswer } from './secrets.ts';
export { SUBSCRIPTION_TOPICS } from './topics.ts';
export { MAX_EVENTS_PER_NOTIFICATION } from './definition.ts';
