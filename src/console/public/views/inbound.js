import { call, qs } from '../api.js';
import { html, useLoad, Loading, Table, Pager, Badge, Json, RefLink, money, time, href, go } from '../ui.js';

const STATUSES = ['processed', 'duplicate', 'unmatched', 'refused', 'failed'];

/** The journal, newest first, filtered by source, status and time; paged on the server. */
export function Inbound({ ctx, query }) {
  const { before, ...filters } = query;
  const state = useLoad(() => call(`/admin/inbound-events${qs({ tenant: ctx.adminTenant, ...query, limit: 25 })}`), [ctx.adminTenant, JSON.stringify(query)]);
  const apply = (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    for (const k of ['since', 'until']) if (f[k]) f[k] = new Date(f[k]).toISOString();
    go('inbound', f);
  };
  const local = (iso) => (iso ? new Date(new Date(iso).getTime() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16) : '');
  return html`<h1 tabindex="-1">Inbound messages</h1>
    <form class="filters" onSubmit=${apply} aria-label="Filter the journal">
      <label>Source <input name="source" value=${filters.source ?? ''} placeholder="cair, instamed…" /></label>
      <label>Source id <input name="sourceId" value=${filters.sourceId ?? ''} /></label>
      <label>Status <select name="status" value=${filters.status ?? ''}>
        <option value="">any</option>${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select></label>
      <label>From <input type="datetime-local" name="since" value=${local(filters.since)} /></label>
      <label>To <input type="datetime-local" name="until" value=${local(filters.until)} /></label>
      <button type="submit">Filter</button>
    </form>
    <${Loading} state=${state}>${(page) => html`
      <${Table} caption="Journal, newest first" rows=${page.items} empty="No messages match."
        columns=${[
          { label: 'Event', render: (r) => html`<a href=${href(`inbound/${r.id}`)}>#${r.id}</a>` },
          { label: 'Received', render: (r) => time(r.receivedAt) },
          { label: 'Source', render: (r) => html`<a href=${href('inbound', { ...filters, source: r.source })}>${r.source}</a>` },
          { label: 'Type', key: 'eventType' },
          { label: 'Status', render: (r) => html`<${Badge} value=${r.status} />` },
          { label: 'Our answer', render: (r) => r.answerStatus ?? '—', num: true },
          { label: 'Error', render: (r) => r.error ?? '' },
        ]} />
      <${Pager} label="Journal" hasNext=${Boolean(page.next)} atFirst=${!before}
        onNext=${() => go('inbound', { ...filters, before: page.next })} onFirst=${() => go('inbound', filters)} />`}<//>`;
}

export function InboundEvent({ ctx, id }) {
  const state = useLoad(() => call(`/admin/inbound-events/${encodeURIComponent(id)}${qs({ tenant: ctx.adminTenant })}`), [ctx.adminTenant, id]);
  return html`<h1 tabindex="-1">Inbound message #${id}</h1>
    <p><a href=${href('inbound')}>Back to the journal</a></p>
    <${Loading} state=${state}>${(e) => html`
      <dl class="facts">
        <dt>Received</dt><dd>${time(e.receivedAt)}</dd>
        <dt>Source</dt><dd>${e.source}${e.sourceId ? ` (${e.sourceId})` : ''}</dd>
        <dt>Type</dt><dd>${e.eventType}</dd>
        <dt>Status</dt><dd><${Badge} value=${e.status} />${e.duplicateOf ? html` of <a href=${href(`inbound/${e.duplicateOf}`)}>#${e.duplicateOf}</a>` : ''}</dd>
        <dt>Dedupe key</dt><dd><code>${e.dedupeKey}</code></dd>
        ${e.error && html`<dt>Error</dt><dd class="error">${e.error}</dd>`}
        <dt>Resources written</dt><dd>${e.resources.length ? html`<${Resources} list=${e.resources} />` : 'none'}
          ${e.resourcesTotal > e.resources.length && html`<p class="note">and ${(e.resourcesTotal - e.resources.length).toLocaleString()} more (the journal lists the first ${e.resources.length.toLocaleString()}; the PaymentReconciliation lists every claim)</p>`}</dd>
      </dl>
      ${e.source === 'x12-835' && e.body?.file && html`<${RemittanceSummary} body=${e.body} />`}
      <section aria-labelledby="raw-h"><h2 id="raw-h">Raw body${e.contentType ? ` (${e.contentType})` : ''}</h2>
        ${e.rawTruncated && html`<p class="note" role="note">Truncated: the first ${bytes(e.body.file.rawKeptBytes)} of ${bytes(e.rawBytes)} are kept (sha-256 <code>${e.body.file.sha256}</code>).</p>`}
        <${Json} value=${e.rawBody ?? e.body} label=${e.rawTruncated ? 'The start of the raw body as received' : 'Raw body as received'} /></section>
      <section aria-labelledby="headers-h"><h2 id="headers-h">Headers kept</h2>
        ${e.headers && Object.keys(e.headers).length
          ? html`<${Table} caption="Request headers we keep (never credentials)" rowKey=${(r) => r[0]} rows=${Object.entries(e.headers)}
              columns=${[{ label: 'Header', render: (r) => r[0] }, { label: 'Value', render: (r) => r[1] }]} />`
          : html`<p>None kept for this sender.</p>`}</section>
      <section aria-labelledby="answer-h"><h2 id="answer-h">Our answer${e.answer ? `: HTTP ${e.answer.status}` : ''}</h2>
        ${e.answer ? html`<${Json} value=${e.answer.body} label="Our answer body" />` : html`<p>No answer was stored.</p>`}</section>`}<//>`;
}

const bytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`);

/** What the journal keeps of an 835 file instead of all of it (src/inbound/x12-835/journal.ts). */
function RemittanceSummary({ body }) {
  const f = body.file;
  return html`<section aria-labelledby="x12-h"><h2 id="x12-h">Remittance file</h2>
    <dl class="facts">
      <dt>Size</dt><dd>${bytes(f.bytes)}</dd>
      <dt>sha-256</dt><dd><code>${f.sha256}</code></dd>
      <dt>Interchanges (ISA13)</dt><dd>${body.interchanges?.join(', ') || '—'}</dd>
      <dt>Groups (GS06)</dt><dd>${body.groups?.join(', ') || '—'}</dd>
      ${body.claims !== undefined && html`<dt>Claims</dt><dd>${body.claims.toLocaleString()}</dd>`}
      ${body.totalPaid !== undefined && html`<dt>Total paid</dt><dd>${money(body.totalPaid, body.currency)}</dd>`}
      ${body.declaredBytes !== undefined && html`<dt>Declared size</dt><dd>${bytes(body.declaredBytes)}</dd>`}
    </dl>
    ${body.remittances?.length > 0 && html`<${Table} caption=${`Payer traces${body.remittanceCount > body.remittances.length ? ` (the first ${body.remittances.length} of ${body.remittanceCount})` : ''}`}
      rows=${body.remittances} rowKey=${(r) => `${r.payerId}|${r.traceNumber}`}
      columns=${[
        { label: 'Trace (TRN02)', key: 'traceNumber' },
        { label: 'Payer (TRN03)', key: 'payerId' },
        { label: 'Status', render: (r) => html`<${Badge} value=${r.status} />` },
        { label: 'Paid', render: (r) => money(r.paymentAmount, body.currency), num: true },
        { label: 'Claims', key: 'claims', num: true },
        { label: 'Applied', key: 'applied', num: true },
        { label: 'Waiting', key: 'waiting', num: true },
        { label: 'Record', render: (r) => html`<${RefLink} reference=${`PaymentReconciliation/${r.paymentReconciliationId}`} />` },
      ]} />`}
  </section>`;
}

/** The resources a message wrote: the first few inline, the rest of the listed ones behind a disclosure. */
function Resources({ list }) {
  const inline = list.slice(0, 12);
  const links = (refs) => html`<ul class="inline">${refs.map((r) => html`<li><${RefLink} reference=${r} /></li>`)}</ul>`;
  return html`${links(inline)}${list.length > inline.length && html`<details><summary>All ${list.length.toLocaleString()} listed</summary>${links(list.slice(inline.length))}</details>`}`;
}
