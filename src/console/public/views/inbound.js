import { call, qs } from '../api.js';
import { html, useLoad, Loading, Table, Pager, Badge, Json, RefLink, time, href, go } from '../ui.js';

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
        <dt>Resources written</dt><dd>${e.resources.length ? html`<ul class="inline">${e.resources.map((r) => html`<li><${RefLink} reference=${r} /></li>`)}</ul>` : 'none'}</dd>
      </dl>
      <section aria-labelledby="raw-h"><h2 id="raw-h">Raw body${e.contentType ? ` (${e.contentType})` : ''}</h2>
        <${Json} value=${e.rawBody ?? e.body} label="Raw body as received" /></section>
      <section aria-labelledby="headers-h"><h2 id="headers-h">Headers kept</h2>
        ${e.headers && Object.keys(e.headers).length
          ? html`<${Table} caption="Request headers we keep (never credentials)" rowKey=${(r) => r[0]} rows=${Object.entries(e.headers)}
              columns=${[{ label: 'Header', render: (r) => r[0] }, { label: 'Value', render: (r) => r[1] }]} />`
          : html`<p>None kept for this sender.</p>`}</section>
      <section aria-labelledby="answer-h"><h2 id="answer-h">Our answer${e.answer ? `: HTTP ${e.answer.status}` : ''}</h2>
        ${e.answer ? html`<${Json} value=${e.answer.body} label="Our answer body" />` : html`<p>No answer was stored.</p>`}</section>`}<//>`;
}
