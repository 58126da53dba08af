import { call, covers, qs } from '../api.js';
import { html, useLoad, Loading, Table, Outcome, useAction, age, money, time, href } from '../ui.js';

/** Payments waiting for their claim, oldest first: apply (once the claim exists) or discard with a reason. */
export function Waiting({ ctx, query }) {
  const state = useLoad(() => call(`/admin/unmatched-payments${qs({ tenant: ctx.adminTenant, source: query.source })}`), [ctx.adminTenant, query.source]);
  const action = useAction();
  // The server's rule for applying or discarding (src/auth/tenant-access.ts).
  const mayAct = ctx.session.admin || ctx.session.scopes.includes('webhook') || covers('system/PaymentReconciliation.c');
  const apply = async (p) => {
    const r = await action.run(() => call(`/admin/unmatched-payments/${p.id}/apply`, { method: 'POST' }),
      (o) => `Applied bill ${p.billId}: ${money(String(o.amountSetOnClaim), p.currency)} to the claim, ${money(String(o.excessAmount), p.currency)} as credit`);
    if (r) state.reload();
  };
  const discard = async (e, p) => {
    e.preventDefault();
    const reason = new FormData(e.target).get('reason');
    const r = await action.run(() => call(`/admin/unmatched-payments/${p.id}/discard`, { method: 'POST', body: { reason } }), `Discarded bill ${p.billId}`);
    if (r) state.reload();
  };
  return html`<h1 tabindex="-1">Waiting payments</h1>
    <p>Payments whose claim was not here when they came, for tenant <strong>${ctx.adminTenant}</strong>. Apply one once its claim exists; discard one that will never match, saying why.</p>
    <${Outcome} outcome=${action.outcome} />
    <${Loading} state=${state}>${(r) => html`<${Table} caption="Waiting, oldest first" rows=${r.unmatchedPayments} empty="No payment is waiting."
      columns=${[
        { label: 'Bill id', key: 'billId' },
        { label: 'Source', key: 'source' },
        { label: 'Amount', render: (p) => money(String(p.amount), p.currency), num: true },
        { label: 'Trace id', render: (p) => p.paymentTraceId ?? '—' },
        { label: 'Received', render: (p) => time(p.receivedAt) },
        { label: 'Age', render: (p) => age(p.ageSeconds), num: true },
        { label: 'Claim', render: (p) => html`<a href=${href('money', { billId: p.billId })}>find</a>` },
        { label: 'Actions', render: (p) => !mayAct ? '—' : html`<div class="row-actions">
            <button type="button" onClick=${() => apply(p)} disabled=${action.busy}>Apply<span class="sr"> bill ${p.billId}</span></button>
            <form onSubmit=${(e) => discard(e, p)}>
              <label class="sr" for=${`reason-${p.id}`}>Reason to discard bill ${p.billId}</label>
              <input id=${`reason-${p.id}`} name="reason" required maxlength="1000" placeholder="reason" />
              <button type="submit" disabled=${action.busy}>Discard<span class="sr"> bill ${p.billId}</span></button>
            </form></div>` },
      ]} />
      ${r.waitingClaimPayments?.length > 0 && html`<${Table} caption="Payer claim payments (X12 835) waiting for their claim: each applies by itself when a claim with its bill id is written"
        rows=${r.waitingClaimPayments} rowKey=${(c) => `${c.remittanceId}|${c.seq}`}
        columns=${[
          { label: 'Bill id (CLP01)', key: 'billId' },
          { label: 'Payer claim (CLP07)', render: (c) => c.payerClaimId ?? '—' },
          { label: 'Status (CLP02)', key: 'statusCode' },
          { label: 'Paid', render: (c) => money(c.paid, c.currency), num: true },
          { label: 'Payer trace', render: (c) => c.trace?.[1] ?? '—' },
          { label: 'Received', render: (c) => time(c.receivedAt) },
        ]} />`}`}<//>`;
}
