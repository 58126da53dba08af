import { afterAll, describe, expect, it } from 'vitest';
import type { ServerProcess } from '../support/process.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import type { Target } from './support.ts';
import { Api, booksProblems, dropSchema, notifiedIds, paymentSubscription, startPayments, startServer, tally, target, waitUntil } from './support.ts';

/**
 * kill -9 of the server (API and delivery worker in one process) while 8 clients post payments and
 * a subscription is notified of each; then a restart. Every acknowledged payment must be stored
 * once, none doubled, the books balanced, and every stored payment notified soon after the restart
 * (a dead worker's delivery lease runs out in seconds).
 */
const databaseUrl = process.env.DATABASE_URL;
const servers: ServerProcess[] = [];
let receiver: Receiver | undefined;
let t: Target | undefined;
afterAll(async () => {
  for (const s of servers) s.child.kill('SIGKILL');
  await receiver?.close();
  if (t) await dropSchema(t);
});

describe.skipIf(!databaseUrl)('kill -9 under load', () => {
  it('loses, doubles and leaves unnotified nothing, and delivery resumes within seconds of the restart', async () => {
    const fault = target(databaseUrl!, 'crash');
    t = fault;
    receiver = await startReceiver();
    const first = await startServer(fault);
    servers.push(first);
    let api = await Api.connect(first);
    await api.fhir('POST', 'Subscription', paymentSubscription(receiver.url));
    const billIds = Array.from({ length: 8 }, (_, i) => `crash-${fault.schema}-${i}`);
    const claimIds = await Promise.all(billIds.map((b) => api.payableClaim(b)));

    const load = startPayments(api, billIds, fault.schema);
    await waitUntil('payments under way', () => load.answers.filter((a) => a.status === 200).length >= 40, 60_000);
    await new Promise((r) => setTimeout(r, 1500));
    first.child.kill('SIGKILL');
    const killedAt = Date.now();
    await first.exited;
    await load.stop();

    const second = await startServer(fault);
    servers.push(second);
    const restartedAt = Date.now();
    api = new Api(second.base, api.token); // tokens outlive the process: keys are in the database

    const acknowledged = load.answers.filter((a) => a.status === 200);
    // Answers other than 200 can only be the lost connection of the kill (no answer at all).
    expect(load.answers.filter((a) => a.status !== 200 && a.status !== undefined)).toEqual([]);
    const stored = tally(await api.paymentReconciliations());
    const lost = acknowledged.filter((a) => stored.count.get(a.traceId) !== 1);
    const doubled = [...stored.count].filter(([, n]) => n > 1);
    expect(lost).toEqual([]);
    expect(doubled).toEqual([]);
    // Each claim's paid amount is its stored payments (1.00 each), and the ledger agrees.
    for (const [i, claimId] of claimIds.entries()) {
      const storedForClaim = [...stored.count.keys()].filter((traceId) => traceId.startsWith(`pi_${fault.schema}_${i}_`)).length;
      expect(await api.paidOn(claimId)).toBe(storedForClaim);
    }
    expect(await booksProblems(fault)).toEqual([]);

    await waitUntil('every stored payment notified', () => [...stored.byId.keys()].every((id) => notifiedIds(receiver!).has(id)), 60_000);
    const lastArrival = Math.max(...receiver.received.map((r) => r.at));
    const firstAfterRestart = Math.min(...receiver.received.filter((r) => r.at >= restartedAt).map((r) => r.at));
    const seconds = (from: number): string => (Math.max(0, lastArrival - from) / 1000).toFixed(1);
    console.log(
      `kill -9 under load: ${acknowledged.length} acknowledged, ${lost.length} lost, ${doubled.length} doubled, ` +
        `all notified ${seconds(restartedAt)} s after restart (` +
        (Number.isFinite(firstAfterRestart) ? `delivery resumed ${((firstAfterRestart - restartedAt) / 1000).toFixed(1)} s after it; ` : 'nothing was left to deliver; ') +
        `${seconds(killedAt)} s after the kill, the restart included; ` +
        `${stored.count.size} stored, ${load.answers.length - acknowledged.length} unanswered at the kill)`,
    );
  });
});
