import { useRef } from '../vendor/hooks.js';
import { call, qs, search } from '../api.js';
import { html, useLoad, Loading, Table, Badge, Outcome, useAction, RefLink, cents, money, fhirMoney, time, href, go } from '../ui.js';

const nameOf = (p) => p?.name?.[0] ? [p.name[0].given?.join(' '), p.name[0].family].filter(Boolean).join(' ') || p.name[0].text : p?.id;
// The patient-paid-amount the server writes on each claim (shown, never summed here).
const PAID_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/patient-paid-amount';
const billIds = (claim) => (claim.identifier ?? []).map((i) => i.value).join(', ');

/** Find a patient by name or a claim by bill id. */
export function Money({ ctx, query }) {
  const patients = useLoad(() => search('Patient', { name: query.name, _count: 20 }), [query.name]);
  const claims = useLoad(() => (query.billId ? search('Claim', { identifier: query.billId, _count: 20 }) : Promise.resolve(null)), [query.billId]);
  const find = (e) => {
    e.preventDefault();
    go('money', Object.fromEntries(new FormData(e.target)));
  };
  return html`<h1 tabindex="-1">Money</h1>
    <p class="note">Patients and claims of tenant <strong>${ctx.tenant}</strong>${ctx.session.admin && ctx.tenant !== ctx.session.tenant ? html` (read through <code>/fhir</code> with <code>X-Tenant: ${ctx.tenant}</code>)` : ''}.</p>
    <form class="filters" onSubmit=${find} aria-label="Find a patient or a claim">
      <label>Patient name <input name="name" value=${query.name ?? ''} /></label>
      <label>Bill id <input name="billId" value=${query.billId ?? ''} /></label>
      <button type="submit">Find</button>
    </form>
    ${query.billId && html`<${Loading} state=${claims}>${(r) => html`<${Table} caption=${`Claims with bill id ${query.billId}`} rows=${r.resources} empty="No claim has that bill id (yet)."
      columns=${[
        { label: 'Claim', render: (c) => html`<a href=${href(`money/claim/${c.id}`)}>Claim/${c.id}</a>` },
        { label: 'Patient', render: (c) => html`<${RefLink} reference=${c.patient?.reference} />` },
        { label: 'Status', render: (c) => html`<${Badge} value=${c.status} />` },
        { label: 'Created', render: (c) => c.created },
      ]} />`}<//>`}
    <${Loading} state=${patients}>${(r) => html`<${Table} caption=${query.name ? `Patients named ${query.name}` : 'Patients'} rows=${r.resources} empty="No patients."
      columns=${[
        { label: 'Patient', render: (p) => html`<a href=${href(`money/patient/${p.id}`)}>${nameOf(p)}</a>` },
        { label: 'Born', render: (p) => p.birthDate ?? '—' },
        { label: 'Id', render: (p) => html`<code>${p.id}</code>` },
      ]} />`}<//>`;
}

/**
 * A patient's claim lifecycles, payments and credits, and allocating a credit to a claim. What is
 * owed, paid, open and in credit is the server's (GET /admin/patient-balance): this only shows it.
 */
export function Patient({ ctx, id }) {
  const ref = `Patient/${id}`;
  const state = useLoad(async () => {
    const [patient, balance, payments, credits] = await Promise.all([
      call(`/fhir/Patient/${encodeURIComponent(id)}`),
      call(`/admin/patient-balance${qs({ tenant: ctx.tenant, patient: ref })}`),
      call(`/admin/patient-payments${qs({ tenant: ctx.tenant, patient: ref, limit: 100 })}`),
      search('PatientCredit', { patient: ref, _count: 100 }),
    ]);
    return { patient, balance, payments: payments.items, allocations: new Map(credits.resources.map((c) => [c.id, c.allocation ?? []])) };
  }, [id, ctx.tenant]);
  const action = useAction();
  const d0 = useRef(null);
  const allocate = async (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    const parameter = [{ name: 'claim', valueReference: { reference: `Claim/${f.claim}` } }];
    // In the tenant's book currency (the server refuses any other). The typed decimal goes as JSON's number, unchanged.
    if (f.amount) parameter.push({ name: 'amount', valueMoney: { value: Number(f.amount), currency: d0.current } });
    const r = await action.run(() => call(`/fhir/PatientCredit/${f.credit}/$allocate`, { method: 'POST', body: { resourceType: 'Parameters', parameter } }),
      (c) => `Allocated: the credit's balance is now ${fhirMoney(c.balance, d0.current)} (${c.status})`);
    if (r) state.reload();
  };
  return html`<${Loading} state=${state}>${(d) => {
    const { totals, lifecycles, credits } = d.balance;
    // Every amount of the patient's books is in the tenant's book currency (the server says which).
    const cur = d.balance.currency;
    d0.current = cur;
    const usable = credits.filter((c) => cents(c.balance) > 0n && c.status !== 'reversed');
    const claimOf = (l) => l.claims[0];
    return html`<h1 tabindex="-1">${nameOf(d.patient)}</h1>
      <p><a href=${href('money')}>Find another patient</a> · <a href=${href(`resource/Patient/${id}`)}>as FHIR</a> · tenant <strong>${ctx.tenant}</strong></p>
      <section class="cards" aria-label="Totals">
        <div class="card"><strong>${money(totals.responsibility, cur)}</strong> responsibility</div>
        <div class="card"><strong>${money(totals.paid, cur)}</strong> paid on claims</div>
        <div class="card ${cents(totals.open) > 0n ? 'warn' : ''}"><strong>${money(totals.open, cur)}</strong> open</div>
        <div class="card"><strong>${money(totals.credit, cur)}</strong> in credit</div>
      </section>
      <${Table} caption="Claim lifecycles" rows=${lifecycles} rowKey=${(l) => l.lifecycleId} empty="No claims."
        columns=${[
          { label: 'Claim', render: (l) => l.claims.map((c) => html`<div><a href=${href(`money/claim/${c.id}`)}>Claim/${c.id}</a></div>`) },
          { label: 'Bill id', render: (l) => [...new Set(l.claims.flatMap((c) => c.billIds))].join(', ') },
          { label: 'Lifecycle', render: (l) => html`<code>${l.lifecycleId}</code>` },
          { label: 'Responsibility', render: (l) => (l.claimResponse ? html`<${RefLink} reference=${l.claimResponse} label=${money(l.responsibility, cur)} />` : 'not adjudicated'), num: true },
          { label: 'Paid', render: (l) => money(l.paid, cur), num: true },
          { label: 'Open', render: (l) => money(l.open, cur), num: true },
        ]} />
      <${Table} caption="Payments" rows=${d.payments} empty="No payments."
        columns=${[
          { label: 'Date', key: 'paymentDate' },
          { label: 'Trace id', render: (p) => p.paymentTraceId ?? '—' },
          { label: 'Source', key: 'source' },
          { label: 'Amount', render: (p) => money(p.amount, p.currency), num: true },
          { label: 'On the claim', render: (p) => money(p.appliedAmount, p.currency), num: true },
          { label: 'As credit', render: (p) => money(p.creditedAmount, p.currency), num: true },
          { label: 'Reversed', render: (p) => money(p.reversedAmount, p.currency), num: true },
          { label: 'Claim', render: (p) => html`<${RefLink} reference=${`Claim/${p.claimId}`} />` },
          { label: 'Record', render: (p) => html`<${RefLink} reference=${`PaymentReconciliation/${p.paymentReconciliationId}`} />` },
        ]} />
      <${Table} caption="Credits" rows=${credits} empty="No credits."
        columns=${[
          { label: 'Credit', render: (c) => html`<${RefLink} reference=${`PatientCredit/${c.id}`} />` },
          { label: 'Status', render: (c) => html`<${Badge} value=${c.status} />` },
          { label: 'Amount', render: (c) => money(c.amount, cur), num: true },
          { label: 'Balance', render: (c) => money(c.balance, cur), num: true },
          { label: 'Allocations', render: (c) => (d.allocations.get(c.id) ?? []).map((a) => html`<div>${fhirMoney(a.amount, cur)} to <${RefLink} reference=${a.claim?.reference} /> (${a.date ?? ''})</div>`) },
        ]} />
      <${Outcome} outcome=${action.outcome} />
      ${usable.length > 0 && html`<form class="panel" onSubmit=${allocate} aria-labelledby="alloc-h">
        <h2 id="alloc-h">Allocate a credit to a claim</h2>
        <label>Credit <select name="credit">${usable.map((c) => html`<option value=${c.id}>${c.id}: balance ${money(c.balance, cur)}</option>`)}</select></label>
        <label>Claim <select name="claim">${lifecycles.map((l) => html`<option value=${claimOf(l).id}>Claim/${claimOf(l).id} (bill ${claimOf(l).billIds.join(', ')}), open ${money(l.open, cur)}</option>`)}</select></label>
        <label>Amount (empty: as much as both allow) <input name="amount" inputmode="decimal" pattern="\\d+(\\.\\d{1,2})?" /></label>
        <button type="submit" disabled=${action.busy}>Allocate</button>
      </form>`}`;
  }}<//>`;
}

/** A claim's timeline as the server tells it: its ClaimResponses (with the responsibility each states), payments, reversals, allocations. */
export function ClaimTimeline({ ctx, id }) {
  const state = useLoad(async () => {
    const [claim, timeline] = await Promise.all([
      call(`/fhir/Claim/${encodeURIComponent(id)}`),
      call(`/admin/claims/${encodeURIComponent(id)}/timeline${qs({ tenant: ctx.tenant })}`),
    ]);
    return { claim, entries: timeline.entries, currency: timeline.currency };
  }, [id, ctx.tenant]);
  const paid = (claim) => claim.extension?.find((e) => e.url === PAID_EXT)?.valueMoney;
  return html`<${Loading} state=${state}>${(d) => html`<h1 tabindex="-1">Claim ${id}</h1>
    <p>Bill id ${billIds(d.claim)} · patient <${RefLink} reference=${d.claim.patient?.reference} /> · paid ${fhirMoney(paid(d.claim), d.currency)} · <a href=${href(`resource/Claim/${id}`)}>as FHIR</a></p>
    <${Table} caption="Timeline, oldest first" rows=${d.entries} rowKey=${(e) => `${e.kind}|${e.at}|${e.reference}`} empty="Nothing has happened to this claim yet."
      columns=${[
        { label: 'When', render: (e) => time(e.at) },
        { label: 'What', render: (e) => html`<${Badge} value=${e.kind} />` },
        { label: 'Amount', render: (e) => money(e.amount, d.currency), num: true },
        { label: 'Detail', key: 'detail' },
        { label: 'Record', render: (e) => html`<${RefLink} reference=${e.reference} />` },
      ]} />`}<//>`;
}
