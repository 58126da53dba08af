import type { Queryable } from '../db/index.ts';

/** Money read models for operators: a patient's payments, a claim's timeline, the overview. */

export interface PaymentRow {
  id: string;
  source: string;
  billId: string;
  paymentTraceId: string | null;
  claimId: string;
  lifecycleId: string;
  patient: string;
  /** Decimal text, as stored (numeric(18,2)): never a float on the way. */
  amount: string;
  appliedAmount: string;
  creditedAmount: string;
  reversedAmount: string;
  currency: string;
  paymentDate: string;
  paymentMethod: string | null;
  paymentReconciliationId: string;
  patientCreditId: string | null;
  createdAt: string;
}

const PAYMENT_COLUMNS = `p.id, p.source, p.bill_id AS "billId", p.payment_trace_id AS "paymentTraceId", p.claim_id AS "claimId",
  p.lifecycle_id AS "lifecycleId", p.patient_ref AS patient, p.amount::text AS amount, p.applied_amount::text AS "appliedAmount",
  p.credited_amount::text AS "creditedAmount",
  (SELECT coalesce(sum(r.amount), 0)::numeric(18,2)::text FROM payment_reversal r WHERE r.tenant_id = p.tenant_id AND r.payment_id = p.id AND r.status = 'applied') AS "reversedAmount",
  p.currency, p.payment_date::text AS "paymentDate", p.payment_method AS "paymentMethod",
  p.payment_reconciliation_id AS "paymentReconciliationId", p.patient_credit_id AS "patientCreditId", to_json(p.created_at)#>>'{}' AS "createdAt"`;

/** Newest first; `offset` paging (a patient's payments are few). */
export async function patientPayments(
  conn: Queryable,
  q: { tenantId: string; patient?: string; claimId?: string; offset: number; limit: number },
): Promise<{ items: PaymentRow[]; next?: number }> {
  const rows = await conn.query<PaymentRow>(
    `SELECT ${PAYMENT_COLUMNS} FROM patient_payment p
      WHERE p.tenant_id = $1 AND ($2::text IS NULL OR p.patient_ref = $2)
        AND ($3::text IS NULL OR p.lifecycle_id = (SELECT q.lifecycle_id FROM patient_payment q WHERE q.tenant_id = $1 AND q.claim_id = $3 LIMIT 1) OR p.claim_id = $3)
      ORDER BY p.created_at DESC, p.id LIMIT $4 OFFSET $5`,
    [q.tenantId, q.patient ?? null, q.claimId ?? null, q.limit + 1, q.offset],
  );
  return rows.length > q.limit ? { items: rows.slice(0, q.limit), next: q.offset + q.limit } : { items: rows };
}

export interface TimelineEntry {
  at: string;
  kind: 'payment' | 'reversal' | 'allocation';
  /** Decimal text; negative for money back to the payer. */
  amount: string;
  detail: string;
  reference: string | null;
}

/**
 * Money events of a claim's lifecycle, oldest first: payments applied to it, reversals of those
 * payments, and credits allocated to it (ledger `credit.allocated` rows on its lifecycle).
 * ClaimResponses are read from /fhir by the caller.
 */
export async function claimTimeline(conn: Queryable, tenantId: string, claimId: string): Promise<TimelineEntry[]> {
  return conn.query<TimelineEntry>(
    `WITH lc AS (SELECT coalesce((SELECT lifecycle_id FROM patient_payment WHERE tenant_id = $1 AND claim_id = $2 LIMIT 1), $2) AS id)
     SELECT to_json(p.created_at)#>>'{}' AS at, 'payment' AS kind, p.applied_amount::text AS amount,
            'payment ' || coalesce(p.payment_trace_id, p.id) || ' of ' || p.amount::text || ' (' || p.source || ')' AS detail,
            'PaymentReconciliation/' || p.payment_reconciliation_id AS reference
       FROM patient_payment p, lc WHERE p.tenant_id = $1 AND p.lifecycle_id = lc.id
     UNION ALL
     SELECT to_json(r.applied_at)#>>'{}', 'reversal', (-r.from_applied)::text, r.kind || ' ' || r.reversal_trace_id || ' of ' || r.amount::text,
            CASE WHEN r.payment_reconciliation_id IS NULL THEN NULL ELSE 'PaymentReconciliation/' || r.payment_reconciliation_id END
       FROM payment_reversal r JOIN patient_payment p ON p.tenant_id = r.tenant_id AND p.id = r.payment_id, lc
      WHERE r.tenant_id = $1 AND r.status = 'applied' AND p.lifecycle_id = lc.id
     UNION ALL
     SELECT to_json(min(e.created_at))#>>'{}', 'allocation', sum(e.amount)::text, 'credit allocated', NULL
       FROM ledger_entry e, lc WHERE e.tenant_id = $1 AND e.kind = 'credit.allocated' AND e.account_type = 'lifecycle' AND e.account_id = lc.id
      GROUP BY e.movement_id
     ORDER BY 1`,
    [tenantId, claimId],
  );
}

export interface Overview {
  hours: { hour: string; messagesIn: number; inboundFailures: number; notificationsOut: number; deliveryFailures: number }[];
  inboundByStatus: Record<string, number>;
  subscriptionsInError: number;
  deadNotifications: number;
  waitingPayments: number;
  oldestWaitingPayment: { id: string; billId: string; amount: string; currency: string; receivedAt: string; ageSeconds: number } | null;
  /** The tenant's book currency: every amount here is in it. */
  currency: string;
}

/** The last `hours` hours, per hour: messages in, notification attempts out, failures of each. */
export async function overview(conn: Queryable, tenantId: string, hours: number): Promise<Overview> {
  // One pass over each table's window (an index range), grouped by hour, then every hour of the
  // window, empty ones included.
  const perHour = await conn.query<Overview['hours'][number]>(
    `WITH h AS (SELECT generate_series(date_trunc('hour', now()) - make_interval(hours => $2 - 1), date_trunc('hour', now()), interval '1 hour') AS hour),
          i AS (SELECT date_trunc('hour', received_at) AS hour, count(*)::int AS n,
                       count(*) FILTER (WHERE status IN ('refused', 'failed'))::int AS bad
                  FROM inbound_event WHERE tenant_id = $1 AND received_at >= date_trunc('hour', now()) - make_interval(hours => $2 - 1) GROUP BY 1),
          o AS (SELECT date_trunc('hour', attempted_at) AS hour, count(*)::int AS n,
                       count(*) FILTER (WHERE http_status IS NULL OR http_status NOT BETWEEN 200 AND 299)::int AS bad
                  FROM delivery_attempt WHERE tenant_id = $1 AND attempted_at >= date_trunc('hour', now()) - make_interval(hours => $2 - 1) GROUP BY 1)
     SELECT to_json(h.hour)#>>'{}' AS hour, coalesce(i.n, 0) AS "messagesIn", coalesce(i.bad, 0) AS "inboundFailures",
            coalesce(o.n, 0) AS "notificationsOut", coalesce(o.bad, 0) AS "deliveryFailures"
       FROM h LEFT JOIN i ON i.hour = h.hour LEFT JOIN o ON o.hour = h.hour ORDER BY h.hour`,
    [tenantId, hours],
  );
  const byStatus = await conn.query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM inbound_event WHERE tenant_id = $1 AND received_at >= now() - make_interval(hours => $2) GROUP BY status`,
    [tenantId, hours],
  );
  const [counts] = await conn.query<{ errors: number; dead: number; waiting: number; currency: string }>(
    `SELECT (SELECT currency FROM tenant WHERE id = $1) AS currency,
            (SELECT count(*)::int FROM subscription_registry WHERE tenant_id = $1 AND status = 'error') AS errors,
            (SELECT count(*)::int FROM subscription_notification WHERE tenant_id = $1 AND status = 'dead') AS dead,
            (SELECT count(*)::int FROM unmatched_payment WHERE tenant_id = $1 AND status = 'waiting') AS waiting`,
    [tenantId],
  );
  const oldest = await conn.query<NonNullable<Overview['oldestWaitingPayment']>>(
    `SELECT id, bill_id AS "billId", amount::text AS amount, to_json(received_at)#>>'{}' AS "receivedAt",
            extract(epoch FROM now() - received_at)::int AS "ageSeconds"
       FROM unmatched_payment WHERE tenant_id = $1 AND status = 'waiting' ORDER BY received_at, id LIMIT 1`,
    [tenantId],
  );
  return {
    hours: perHour,
    inboundByStatus: Object.fromEntries(byStatus.map((r) => [r.status, r.n])),
    subscriptionsInError: counts.errors,
    deadNotifications: counts.dead,
    waitingPayments: counts.waiting,
    oldestWaitingPayment: oldest[0] ? { ...oldest[0], currency: counts.currency } : null,
    currency: counts.currency,
  };
}
