import { call, qs, search } from '../api.js';
import { html, useLoad, Loading, Table, Badge, Outcome, useAction, RefLink, cents, money, time, href, go } from '../ui.js';

const PAID_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/patient-paid-amount';
const LIFECYCLE_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/claim-lifecycle-id';
const MEMBER_LIABILITY = 'memberliability';

const nameOf = (p) => p?.name?.[0] ? [p.name[0].given?.join(' '), p.name[0].family].filter(Boolean).join(' ') || p.name[0].text : p?.id;
const paidOn = (claim) => claim.extension?.find((e) => e.url === PAID_EXT)?.valueMoney?.value ?? 0;
const lifecycleOf = (claim) => claim.extension?.find((e) => e.url === LIFECYCLE_EXT)?.valueString ?? claim.id;
const billIds = (claim) => (claim.identifier ?? []).map((i) => i.value).join(', ');

/** The patient's responsibility a ClaimResponse states (its memberliability total), in cents. */
function responsibility(cr) {
  const total = (cr.total ?? []).find((t) => t.category?.coding?.some((c) => c.code === MEMBER_LIABILITY));
  return total ? cents(String(total.amount?.value ?? 0)) : undefined;
}

/** The newest active ClaimResponse (use claim) for each claim id. */
function latestResponses(responses) {
  const by = new Map();
  for (const cr of responses.filter((r) => r.status === 'active' && (r.use ?? 'claim') === 'claim')) {
    const claimId = cr.request?.reference?.split('/')[1];
    const seen = by.get(claimId);
    if (!seen || `${cr.created}|${cr.meta?.lastUpdated}` > `${seen.created}|${seen.meta?.lastUpdated}`) by.set(claimId, cr);
  }
  return by;
}

/** Find a patient by name or a claim by bill id. */
export function Money({ ctx, query }) {
  const patients = useLoad(() => search('Patient', { name: query.name, _count: 20 }), [query.name]);
  const claims = useLoad(() => (query.billId ? search('Claim', { identifier: query.billId, _count: 20 }) : Promise.resolve(null)), [query.billId]);
  const find = (e) => {
    e.preventDefault();
    go('money', Object.fromEntries(new FormData(e.target)));
  };
  return html`<h1 tabindex="-1">Money</h1>
    <p class="note">Patients and claims of tenant <strong>${ctx.fhirTenant}</strong> (the signed-in client's, as FHIR serves them).</p>
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

/** A patient's payments, credits and claim lifecycles, and allocating a credit to a claim. */
export function Patient({ ctx, id }) {
  const ref = `Patient/${id}`;
  const state = useLoad(async () => {
    const [patient, payments, credits, claims, responses] = await Promise.all([
      call(`/fhir/Patient/${encodeURIComponent(id)}`),
      call(`/admin/patient-payments${qs({ tenant: ctx.fhirTenant, patient: ref, limit: 100 })}`),
      search('PatientCredit', { patient: ref, _count: 100 }),
      search('Claim', { patient: ref, _count: 100 }),
      search('ClaimResponse', { patient: ref, _count: 100 }),
    ]);
    return { patient, payments: payments.items, credits: credits.resources, claims: claims.resources, responses: latestResponses(responses.resources) };
  }, [id]);
  const action = useAction();
  const allocate = async (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    const parameter = [{ name: 'claim', valueReference: { reference: `Claim/${f.claim}` } }];
    if (f.amount) parameter.push({ name: 'amount', valueMoney: { value: Number(f.amount), currency: 'USD' } });
    const r = await action.run(() => call(`/fhir/PatientCredit/${f.credit}/$allocate`, { method: 'POST', body: { resourceType: 'Parameters', parameter } }),
      (c) => `Allocated: the credit's balance is now ${money(String(c.balance?.value ?? 0))} (${c.status})`);
    if (r) state.reload();
  };
  return html`<${Loading} state=${state}>${(d) => {
    const lifecycles = d.claims.map((c) => {
      const cr = d.responses.get(c.id);
      const owed = cr ? responsibility(cr) ?? 0n : 0n;
      const paid = cents(String(paidOn(c)));
      const open = owed > paid ? owed - paid : 0n;
      return { id: c.id, claim: c, cr, owed, paid, open };
    });
    const usable = d.credits.filter((c) => cents(String(c.balance?.value ?? 0)) > 0n && c.status !== 'reversed');
    return html`<h1 tabindex="-1">${nameOf(d.patient)}</h1>
      <p><a href=${href('money')}>Find another patient</a> · <a href=${href(`resource/Patient/${id}`)}>as FHIR</a></p>
      <section class="cards" aria-label="Totals">
        <div class="card"><strong>${money(lifecycles.reduce((n, l) => n + l.owed, 0n))}</strong> responsibility</div>
        <div class="card"><strong>${money(lifecycles.reduce((n, l) => n + l.paid, 0n))}</strong> paid on claims</div>
        <div class="card ${lifecycles.some((l) => l.open > 0n) ? 'warn' : ''}"><strong>${money(lifecycles.reduce((n, l) => n + l.open, 0n))}</strong> open</div>
        <div class="card"><strong>${money(d.credits.reduce((n, c) => n + cents(String(c.balance?.value ?? 0)), 0n))}</strong> in credit</div>
      </section>
      <${Table} caption="Claim lifecycles" rows=${lifecycles} empty="No claims."
        columns=${[
          { label: 'Claim', render: (l) => html`<a href=${href(`money/claim/${l.id}`)}>Claim/${l.id}</a>` },
          { label: 'Bill id', render: (l) => billIds(l.claim) },
          { label: 'Lifecycle', render: (l) => html`<code>${lifecycleOf(l.claim)}</code>` },
          { label: 'Responsibility', render: (l) => (l.cr ? money(l.owed) : 'not adjudicated'), num: true },
          { label: 'Paid', render: (l) => money(l.paid), num: true },
          { label: 'Open', render: (l) => money(l.open), num: true },
        ]} />
      <${Table} caption="Payments" rows=${d.payments} empty="No payments."
        columns=${[
          { label: 'Date', key: 'paymentDate' },
          { label: 'Trace id', render: (p) => p.paymentTraceId ?? '—' },
          { label: 'Source', key: 'source' },
          { label: 'Amount', render: (p) => money(p.amount), num: true },
          { label: 'On the claim', render: (p) => money(p.appliedAmount), num: true },
          { label: 'As credit', render: (p) => money(p.creditedAmount), num: true },
          { label: 'Reversed', render: (p) => money(p.reversedAmount), num: true },
          { label: 'Claim', render: (p) => html`<${RefLink} reference=${`Claim/${p.claimId}`} />` },
          { label: 'Record', render: (p) => html`<${RefLink} reference=${`PaymentReconciliation/${p.paymentReconciliationId}`} />` },
        ]} />
      <${Table} caption="Credits" rows=${d.credits} empty="No credits."
        columns=${[
          { label: 'Credit', render: (c) => html`<${RefLink} reference=${`PatientCredit/${c.id}`} />` },
          { label: 'Status', render: (c) => html`<${Badge} value=${c.status} />` },
          { label: 'Amount', render: (c) => money(String(c.amount?.value ?? 0)), num: true },
          { label: 'Balance', render: (c) => money(String(c.balance?.value ?? 0)), num: true },
          { label: 'Allocations', render: (c) => (c.allocation ?? []).map((a) => html`<div>${money(String(a.amount?.value ?? 0))} to <${RefLink} reference=${a.claim?.reference} /> (${a.date ?? ''})</div>`) },
        ]} />
      <${Outcome} outcome=${action.outcome} />
      ${usable.length > 0 && html`<form class="panel" onSubmit=${allocate} aria-labelledby="alloc-h">
        <h2 id="alloc-h">Allocate a credit to a claim</h2>
        <label>Credit <select name="credit">${usable.map((c) => html`<option value=${c.id}>${c.id}: balance ${money(String(c.balance?.value ?? 0))}</option>`)}</select></label>
        <label>Claim <select name="claim">${lifecycles.map((l) => html`<option value=${l.id}>Claim/${l.id} (bill ${billIds(l.claim)}), open ${money(l.open)}</option>`)}</select></label>
        <label>Amount (empty: as much as both allow) <input name="amount" inputmode="decimal" pattern="\\d+(\\.\\d{1,2})?" /></label>
        <button type="submit" disabled=${action.busy}>Allocate</button>
      </form>`}`;
  }}<//>`;
}

/** A claim's timeline: its ClaimResponses, the payments on its lifecycle, reversals, allocations. */
export function ClaimTimeline({ ctx, id }) {
  const state = useLoad(async () => {
    const [claim, responses, timeline] = await Promise.all([
      call(`/fhir/Claim/${encodeURIComponent(id)}`),
      search('ClaimResponse', { request: `Claim/${id}`, _count: 100 }),
      call(`/admin/claims/${encodeURIComponent(id)}/timeline${qs({ tenant: ctx.fhirTenant })}`),
    ]);
    const entries = [
      ...responses.resources.map((cr) => ({ at: cr.created ?? cr.meta?.lastUpdated, kind: 'adjudication', amount: responsibility(cr), detail: `ClaimResponse ${cr.status}, ${cr.outcome ?? ''}`, reference: `ClaimResponse/${cr.id}` })),
      ...timeline.entries.map((e) => ({ ...e, amount: cents(e.amount) })),
    ].sort((a, b) => String(a.at).localeCompare(String(b.at)));
    return { claim, entries };
  }, [id]);
  return html`<${Loading} state=${state}>${(d) => html`<h1 tabindex="-1">Claim ${id}</h1>
    <p>Bill id ${billIds(d.claim)} · patient <${RefLink} reference=${d.claim.patient?.reference} /> · paid ${money(String(paidOn(d.claim)))} · <a href=${href(`resource/Claim/${id}`)}>as FHIR</a></p>
    <${Table} caption="Timeline, oldest first" rows=${d.entries} rowKey=${(e) => `${e.kind}|${e.at}|${e.reference}`} empty="Nothing has happened to this claim yet."
      columns=${[
        { label: 'When', render: (e) => time(e.at) },
        { label: 'What', render: (e) => html`<${Badge} value=${e.kind} />` },
        { label: 'Amount', render: (e) => (e.amount === undefined ? '—' : money(e.amount)), num: true },
        { label: 'Detail', key: 'detail' },
        { label: 'Record', render: (e) => html`<${RefLink} reference=${e.reference} />` },
      ]} />`}<//>`;
}
