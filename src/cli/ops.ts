import { patientBalance } from '../billing/index.ts';
import type { Database } from '../db/index.ts';
import { FULL_ACCESS } from '../fhir/access.ts';
import { PostgresRepository } from '../fhir/repository.ts';
import { overview, patientPayments } from '../ops/money.ts';
import { fullClaimTimeline } from '../ops/timeline.ts';
import { getInboundEvent, listInboundEvents, listNotifications, listSubscriptions, replayFrom, subscriptionExists } from '../ops/store.ts';

/**
 * `fhir-billing journal|deliveries|payments|overview ...`: the operator read APIs of /admin
 * (ops/routes.ts) from the command line, on the same read models.
 */
export const OPS_USAGE = `  journal list --tenant T [--source S] [--status processed|duplicate|unmatched|refused|failed]
               [--before EVENT_ID] [--limit N]    the inbound journal, newest first
  journal show --tenant T [--id] EVENT_ID      one message: raw body, headers, our answer, resources
  deliveries list --tenant T                   subscriptions with status and queue
  deliveries notifications --tenant T [--id] SUBSCRIPTION_ID [--status pending|delivered|dead]
               [--before SEQ] [--limit N]        notifications with every attempt
  deliveries replay --tenant T [--id] SUBSCRIPTION_ID --from EVENT_NUMBER
                                                send again every event from that number on
  payments list --tenant T [--patient Patient/ID] [--claim CLAIM_ID] [--limit N]
  payments balance --tenant T --patient Patient/ID
                                                responsibility, paid, open per claim lifecycle; credits
  payments timeline --tenant T [--id] CLAIM_ID  a claim's ClaimResponses, payments, reversals, allocations
  overview --tenant T [--hours N]              per hour: messages in, attempts out, failures
`;

export const OPS_OPTIONS = {
  source: { type: 'string' },
  status: { type: 'string' },
  before: { type: 'string' },
  limit: { type: 'string' },
  from: { type: 'string' },
  hours: { type: 'string' },
  patient: { type: 'string' },
  claim: { type: 'string' },
} as const;

type Values = Record<string, string | boolean | undefined>;
type Outcome = { ok: true; value: unknown } | { ok: false; message: string };

const EVENT_STATUSES = ['processed', 'duplicate', 'unmatched', 'refused', 'failed'];
const NOTIFICATION_STATUSES = ['pending', 'delivered', 'dead'];

/** Runs one ops command; undefined when `command` is not one. Usage problems throw `usage`. */
export async function runOpsCommand(
  db: Database,
  command: string,
  values: Values,
  need: (name: string) => string,
  usage: (message: string) => Error,
): Promise<Outcome | undefined> {
  const s = (name: string): string | undefined => (typeof values[name] === 'string' && values[name] !== '' ? (values[name] as string) : undefined);
  const int = (name: string, min: number, max: number, fallback?: number): number | undefined => {
    const v = s(name);
    if (v === undefined) return fallback;
    if (!/^\d{1,18}$/.test(v) || Number(v) < min || Number(v) > max) throw usage(`--${name} must be a whole number from ${min} to ${max}`);
    return Number(v);
  };
  const oneOf = (name: string, allowed: string[]): string | undefined => {
    const v = s(name);
    if (v !== undefined && !allowed.includes(v)) throw usage(`--${name} must be one of ${allowed.join(', ')}`);
    return v;
  };
  const limit = (): number => int('limit', 1, 200, 50)!;
  const before = (): string | undefined => (int('before', 1, Number.MAX_SAFE_INTEGER) === undefined ? undefined : s('before'));
  switch (command) {
    case 'journal list':
      return { ok: true, value: await listInboundEvents(db, { tenantId: need('tenant'), source: s('source'), status: oneOf('status', EVENT_STATUSES), before: before(), limit: limit() }) };
    case 'journal show': {
      const id = need('id');
      const event = /^\d{1,18}$/.test(id) ? await getInboundEvent(db, need('tenant'), id) : undefined;
      return event ? { ok: true, value: event } : { ok: false, message: `Inbound event ${id} not found` };
    }
    case 'deliveries list':
      return { ok: true, value: { subscriptions: await listSubscriptions(db, need('tenant')) } };
    case 'deliveries notifications':
    case 'deliveries replay': {
      const tenantId = need('tenant');
      const id = need('id');
      if (!(await subscriptionExists(db, tenantId, id))) return { ok: false, message: `Subscription ${id} not found` };
      if (command === 'deliveries notifications') {
        return { ok: true, value: await listNotifications(db, { tenantId, subscriptionId: id, status: oneOf('status', NOTIFICATION_STATUSES), before: before(), limit: limit() }) };
      }
      const from = int('from', 1, Number.MAX_SAFE_INTEGER);
      if (from === undefined) throw usage('--from is required');
      const requeued = await db.transaction((tx) => replayFrom(tx, tenantId, id, from));
      return { ok: true, value: { subscriptionId: id, fromEventNumber: from, requeued } };
    }
    case 'payments list': {
      const patient = s('patient');
      if (patient !== undefined && !/^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(patient)) throw usage('--patient must be Patient/<id>');
      return { ok: true, value: await patientPayments(db, { tenantId: need('tenant'), patient, claimId: s('claim'), offset: 0, limit: limit() }) };
    }
    case 'payments balance': {
      const patient = need('patient');
      if (!/^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(patient)) throw usage('--patient must be Patient/<id>');
      return { ok: true, value: await patientBalance(new PostgresRepository(db, { tenantId: need('tenant'), access: FULL_ACCESS, baseUrl: '' }), patient) };
    }
    case 'payments timeline':
      return { ok: true, value: { claimId: need('id'), ...(await fullClaimTimeline(new PostgresRepository(db, { tenantId: need('tenant'), access: FULL_ACCESS, baseUrl: '' }), need('id'))) } };
    case 'overview':
      return { ok: true, value: await overview(db, need('tenant'), int('hours', 1, 24 * 31, 24)!) };
    default:
      return undefined;
  }
}
