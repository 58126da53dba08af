import type { Subscription } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { EVENTS_PENDING, NOTIFY_CHANNEL, fanOutEvents, heartbeatsDue, queueSignal, wakeWorkers } from './store.ts';
import { claimRuns, finishRun, renewLeases } from './runs.ts';
import type { Attempted, ClaimedNotification, FinishResult, HeldLease, Run } from './runs.ts';
import { coalesced } from './coalesce.ts';
import { createSender } from './send.ts';
import type { SenderOptions } from './send.ts';
import { databaseUnavailable } from '../db/unavailable.ts';

/** Moves a Subscription resource to `status` (with `error`, or none), as the server. */
export type MoveSubscription = (tenantId: string, subscriptionId: string, status: 'active' | 'error', error?: string) => Promise<void>;

/** MoveSubscription through a repository acting for the server (validation, history, observers). */
export function moveSubscriptionStatus(repositoryFor: (tenantId: string) => PostgresRepository): MoveSubscription {
  return async (tenantId, subscriptionId, status, error) => {
    const repo = repositoryFor(tenantId);
    const sub = await repo.readResource<Subscription>('Subscription', subscriptionId);
    if (sub.status === status && sub.error === error) return;
    const { error: _old, ...rest } = sub;
    await repo.updateResource<Subscription>({ ...rest, status, ...(error && { error }) });
  };
}

/** What the sender needs (send.ts), and how this worker claims and leases. */
export interface WorkerOptions extends SenderOptions {
  /** How delivery moves a Subscription (active after its handshake, error after a dead letter); default: moveSubscriptionStatus. */
  moveSubscription?: MoveSubscription;
  /** How many subscriptions' streams one worker delivers at once. */
  concurrency: number;
  /** Most notifications of one subscription leased, sent and finished together. */
  runSize?: number;
  pollIntervalMs: number;
  /** How long a claim holds without renewal: how soon a crashed worker's notifications go out again. */
  leaseSeconds?: number;
}

export interface DeliveryWorker {
  stop(): Promise<void>;
}

const DEFAULT_LEASE_SECONDS = 5;
const DEFAULT_RUN_SIZE = 100;

/** A run this worker holds: renewed while it is being sent, abandoned if it cannot be. */
interface Held {
  lease: HeldLease;
  /** performance.now() before which the lease surely holds (measured from when the claim was asked). */
  validUntil: number;
  abandon: AbortController;
}

/**
 * Delivers notifications. Woken by NOTIFY when a write commits, it first fans the write's events
 * out (numbers and queues them for the subscriptions they matched; see store.ts fanOutEvents),
 * with polling as the fallback (and for retries coming due). Any number of workers may run, in
 * any processes.
 *
 * Each subscription is one ordered stream: a worker leases a run of its due notifications (the
 * head of line and those right behind it), sends them one after another on a kept-alive
 * connection, records them in one statement and leases the next run in the same transaction. A
 * failed send ends the run there; the notifications behind it wait until it succeeds or is
 * dead-lettered. A NOTIFY about streams this worker is already sending costs nothing: the run in
 * flight picks those events up when it finishes.
 *
 * A lease is short (5 s), renewed every third of it while the run is in flight, so a worker that
 * died (kill -9, a lost machine) holds its subscriptions for seconds. One send per subscription at
 * a time holds even when renewals fail (the database unreachable): a run whose lease is about to
 * run out unrenewed is abandoned first, and the lease token fences off the outcome of a worker
 * whose lease was taken over.
 */
export async function startDeliveryWorker(options: WorkerOptions): Promise<DeliveryWorker> {
  const { db, logger } = options;
  const leaseSeconds = options.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
  const runSize = options.runSize ?? DEFAULT_RUN_SIZE;
  const leaseMs = leaseSeconds * 1000;
  // Abandon a send this long before its lease could run out, leaving room for clock-rate drift.
  const marginMs = Math.min(1000, leaseMs / 5);
  /** By lease token. */
  const held = new Map<string, Held>();
  /** Subscriptions (tenant/id) whose stream this worker is sending now. */
  const streaming = new Set<string>();
  let renewing = false;
  let stopped = false;
  const inFlightDone = new Set<Promise<void>>();
  const sender = createSender(options);

  /** Claims runs for this worker's free streams and starts sending them. */
  const pump = coalesced(
    async () => {
      const free = options.concurrency - streaming.size;
      if (free <= 0) return false;
      // One statement, one round trip; on delivery's own pool it does not wait for the WAL flush
      // either (a lost lease only means a later claim).
      const asked = performance.now();
      const runs = await claimRuns(db, free, runSize, leaseSeconds);
      for (const run of runs) {
        const key = keyOf(run[0]);
        streaming.add(key);
        const p = stream(run, asked)
          .catch((err) => logger.error({ err, subscription: run[0].subscriptionId, seq: run[0].seq }, 'delivery failed unexpectedly'))
          .finally(() => {
            streaming.delete(key);
            inFlightDone.delete(p);
            // Also what catches an event whose NOTIFY came while this stream was busy.
            pump();
          });
        inFlightDone.add(p);
      }
      return runs.length === free;
    },
    { task: 'claiming notifications', logger, stopped: () => stopped },
  );

  /** A NOTIFY: writes committed events (fan them out first), or something else is due (claim). */
  function notified(payload: string): void {
    if (payload === EVENTS_PENDING) fanOut();
    else pump();
  }

  /**
   * Numbers and queues committed events, one fan-out at a time in this worker (a NOTIFY during
   * one asks for one more after it), then claims, unless every stream that got notifications is
   * one this worker is sending already: the run in flight leases them when it finishes.
   */
  const fanOut = coalesced(
    async () => {
      const { streams, more } = await fanOutEvents(db);
      if (streams.some((k) => !streaming.has(k))) pump();
      return more;
    },
    { task: 'fanning out events', logger, stopped: () => stopped },
  );

  const keyOf = (n: { tenantId: string; subscriptionId: string }): string => `${n.tenantId}/${n.subscriptionId}`;

  function hold(run: Run, asked: number): Held {
    const { tenantId, subscriptionId, leaseToken } = run[0];
    const h = { lease: { tenantId, subscriptionId, leaseToken }, validUntil: asked + leaseMs, abandon: new AbortController() };
    held.set(leaseToken, h);
    return h;
  }

  /** Renews the leases that have used a third of their time; abandons the runs whose lease is lost or about to lapse. */
  async function keepLeases(): Promise<void> {
    const now = performance.now();
    for (const h of held.values()) {
      if (h.validUntil - marginMs <= now) h.abandon.abort(`abandoned: the delivery lease could not be renewed in ${leaseSeconds} s`);
    }
    const due = [...held.values()].filter((h) => !h.abandon.signal.aborted && h.validUntil - now < (leaseMs * 2) / 3);
    if (due.length === 0 || renewing) return;
    renewing = true;
    try {
      const renewed = await renewLeases(db, due.map((h) => h.lease), leaseSeconds);
      for (const h of due) {
        if (renewed.has(h.lease.leaseToken)) h.validUntil = now + leaseMs;
        else h.abandon.abort('abandoned: the delivery lease was taken over');
      }
    } catch (err) {
      logger.warn({ err, leases: due.length }, 'renewing delivery leases failed');
    } finally {
      renewing = false;
    }
  }

  /** Delivers `first`, then the subscription's next runs as they are leased, in order. */
  async function stream(first: Run, asked: number): Promise<void> {
    let run: Run | undefined = first;
    let h = hold(first, asked);
    try {
      while (run) {
        const attempted = await sender.sendRun(run, h.abandon.signal, () => stopped);
        // Losing this mark in a crash means one more delivery of notifications receivers dedupe
        // by webhook-id (at-least-once), so on delivery's own pool it does not wait for the WAL flush.
        const { finished, asked: at } = await recordRun(run, h, attempted);
        held.delete(h.lease.leaseToken);
        if (finished.fenced) {
          logger.warn({ subscription: run[0].subscriptionId, seq: run[0].seq }, 'delivery lease was lost; the new owner sends these notifications');
          return;
        }
        await afterRun(run, attempted);
        run = finished.next;
        if (run) h = hold(run, at);
      }
    } finally {
      held.delete(h.lease.leaseToken);
    }
  }

  /** The Subscription resource follows what delivery found: active after a handshake, error after a dead letter. */
  async function afterRun(run: Run, attempted: Attempted[]): Promise<void> {
    for (const a of attempted) {
      const n = run.find((r) => r.seq === a.seqs[0])!; // the request's first notification
      if (a.outcome.next === 'delivered' && n.type === 'handshake') await setSubscriptionStatus(n, 'active');
      if (a.outcome.next === 'dead') {
        logger.warn({ subscription: n.subscriptionId, seq: n.seq, attempts: n.attempts, problem: a.outcome.error }, 'notification dead-lettered');
        await setSubscriptionStatus(n, 'error', `Delivery failed after ${n.attempts} attempt(s): ${a.outcome.error}`);
        return;
      }
    }
  }

  /**
   * finishRun, tried again while the lease holds if the database is away: the outcomes are known,
   * so recording them once the database is back spares the receiver a resend and the subscription
   * the wait for the lease to run out.
   */
  async function recordRun(run: Run, h: Held, attempted: Attempted[]): Promise<{ finished: FinishResult; asked: number }> {
    for (let wait = 100; ; wait = Math.min(wait * 2, 1000)) {
      const asked = performance.now();
      try {
        // A stopping worker leases nothing more; one with all its streams busy ends this one after
        // each run, so that other subscriptions waiting for a stream get their turn (claims take
        // the longest-waiting first).
        const next = stopped || streaming.size >= options.concurrency ? 0 : runSize;
        const finished = await finishRun(db, run, attempted, next, leaseSeconds);
        // What is behind this run is another worker's to take, now rather than at its next poll.
        if (next === 0 && !finished.fenced) void wakeWorkers(db).catch(() => {});
        return { finished, asked };
      } catch (err) {
        if (!databaseUnavailable(err) || stopped || performance.now() + wait >= h.validUntil - marginMs) throw err;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  async function setSubscriptionStatus(n: ClaimedNotification, status: 'active' | 'error', error?: string): Promise<void> {
    try {
      await (options.moveSubscription ?? moveSubscriptionStatus(options.repositoryFor))(n.tenantId, n.subscriptionId, status, error);
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

  const unlisten = await db.listen(NOTIFY_CHANNEL, notified);
  // Polling also catches what a lost NOTIFY (the database away, LISTEN reconnecting) did not say.
  const poll = setInterval(() => {
    fanOut();
    pump();
  }, options.pollIntervalMs);
  const heartbeat = setInterval(() => void queueHeartbeats(), Math.max(options.pollIntervalMs, 1000));
  const leaseKeeper = setInterval(() => void keepLeases(), Math.min(leaseMs / 10, 500));
  fanOut();
  pump();
  logger.info({ concurrency: options.concurrency, runSize }, 'delivery worker started');

  return {
    async stop() {
      stopped = true;
      clearInterval(poll);
      clearInterval(heartbeat);
      await unlisten();
      await fanOut.settled();
      await Promise.allSettled([...inFlightDone]);
      clearInterval(leaseKeeper);
    },
  };
}
