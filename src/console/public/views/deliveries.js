import { useState } from '../vendor/hooks.js';
import { call, covers, qs } from '../api.js';
import { html, useLoad, Loading, Table, Pager, Badge, Outcome, useAction, Chart, time, href } from '../ui.js';

/** Every subscription of the tenant with its state and queue. */
export function Deliveries({ ctx }) {
  const state = useLoad(() => call(`/admin/subscriptions${qs({ tenant: ctx.adminTenant })}`), [ctx.adminTenant]);
  return html`<h1 tabindex="-1">Deliveries</h1>
    <${Loading} state=${state}>${(r) => html`<${Table} caption="Subscriptions" rows=${r.subscriptions} empty="No subscriptions."
      columns=${[
        { label: 'Subscription', render: (s) => html`<a href=${href(`deliveries/${s.id}`)}>${s.id}</a>` },
        { label: 'Status', render: (s) => html`<${Badge} value=${s.status} />` },
        { label: 'On', key: 'resourceType' },
        { label: 'Endpoint', render: (s) => html`<code>${s.endpoint ?? '—'}</code>` },
        { label: 'Events', key: 'eventsCount', num: true },
        { label: 'Pending', key: 'pending', num: true },
        { label: 'Dead', key: 'dead', num: true },
        { label: 'Last sent', render: (s) => time(s.lastSentAt) },
        { label: 'Last error', render: (s) => s.statusError ?? s.lastError ?? '' },
      ]} />`}<//>`;
}

const percent = (b) => (b.attempts ? Math.round((100 * b.succeeded) / b.attempts) : null);

export function Delivery({ ctx, id }) {
  const [before, setBefore] = useState(undefined);
  const [status, setStatus] = useState('');
  const [tick, setTick] = useState(0);
  const base = `/admin/subscriptions/${encodeURIComponent(id)}`;
  const sub = useLoad(() => call(`/admin/subscriptions${qs({ tenant: ctx.adminTenant })}`).then((r) => r.subscriptions.find((s) => s.id === id) ?? Promise.reject(new Error(`Subscription ${id} not found`))), [ctx.adminTenant, id, tick]);
  const health = useLoad(() => call(`${base}/health${qs({ tenant: ctx.adminTenant, hours: 24 })}`), [ctx.adminTenant, id, tick]);
  const list = useLoad(() => call(`${base}/notifications${qs({ tenant: ctx.adminTenant, status, before, limit: 20 })}`), [ctx.adminTenant, id, status, before, tick]);
  const action = useAction();
  const refresh = () => setTick((t) => t + 1);
  // $resend is a FHIR operation: for another tenant the admin's call names it in X-Tenant (api.js).
  const mayResend = ctx.session.admin || covers('system/Subscription.u');
  const resend = async () => {
    const r = await action.run(() => call(`/fhir/Subscription/${encodeURIComponent(id)}/$resend`, { method: 'POST', body: { resourceType: 'Parameters' } }),
      (p) => `Requeued ${p.parameter?.find((x) => x.name === 'requeued')?.valueInteger ?? 0} dead notifications${sub.data?.status === 'error' ? '; the subscription is requested again' : ''}`);
    if (r) refresh();
  };
  const replay = async (e) => {
    e.preventDefault();
    const from = Number(new FormData(e.target).get('from'));
    const r = await action.run(() => call(`${base}/replay`, { method: 'POST', body: { tenant: ctx.adminTenant, fromEventNumber: from } }), (o) => `Replaying ${o.requeued} notifications from event ${from}`);
    if (r) refresh();
  };
  return html`<h1 tabindex="-1">Subscription ${id}</h1>
    <p><a href=${href('deliveries')}>All subscriptions</a> · <a href=${href(`resource/Subscription/${id}`)}>as FHIR</a></p>
    <${Loading} state=${sub}>${(s) => html`<dl class="facts">
      <dt>Status</dt><dd><${Badge} value=${s.status} /></dd>
      <dt>Endpoint</dt><dd><code>${s.endpoint}</code></dd>
      <dt>Events so far</dt><dd>${s.eventsCount}</dd>
      <dt>Queue</dt><dd>${s.pending} pending, ${s.dead} dead</dd>
      ${s.statusError && html`<dt>Why in error</dt><dd class="error">${s.statusError}</dd>`}
      ${s.lastError && html`<dt>Last attempt's error</dt><dd class="error">${s.lastError}</dd>`}
    </dl>
    <div class="actions" role="group" aria-label="Delivery actions">
      <button type="button" onClick=${resend} disabled=${action.busy || !mayResend}>${s.status === 'error' ? 'Re-enable and resend dead' : 'Resend dead notifications'}</button>
      <form onSubmit=${replay} class="inline-form">
        <label for="replay-from">Replay from event number</label>
        <input id="replay-from" name="from" type="number" min="1" max=${Math.max(1, s.eventsCount)} required value="1" />
        <button type="submit" disabled=${action.busy || !mayResend}>Replay</button>
      </form>
      <button type="button" onClick=${refresh}>Refresh</button>
    </div>
    ${!mayResend && html`<p class="note">Resending and replaying need system/Subscription.u.</p>`}`}<//>
    <${Outcome} outcome=${action.outcome} />
    <${Loading} state=${health}>${(h) => !h.buckets.some((b) => b.attempts) ? html`<p>No delivery attempts in the last 24 hours.</p>` : html`<${Chart}
      title="Endpoint health, per hour (last 24 h)" hours=${h.buckets.map((b) => b.hour)}
      summary=${h.buckets.filter((b) => b.attempts).map((b) => `${new Date(b.hour).getHours()}h: ${percent(b)}% of ${b.attempts} attempts succeeded, median ${b.medianLatencyMs} ms`).join('; ')}
      series=${[
        { label: 'Success rate %', values: h.buckets.map(percent), stroke: '#047857', scale: '%' },
        { label: 'Median latency ms', values: h.buckets.map((b) => b.medianLatencyMs), stroke: '#7c3aed', scale: 'ms' },
      ]} />`}<//>
    <section aria-labelledby="notif-h"><h2 id="notif-h">Notifications</h2>
      <label>Status <select value=${status} onChange=${(e) => { setBefore(undefined); setStatus(e.target.value); }}>
        <option value="">any</option><option value="pending">pending</option><option value="delivered">delivered</option><option value="dead">dead</option>
      </select></label>
      <${Loading} state=${list}>${(page) => html`<${Table} caption="Notifications, newest first, with every attempt" rows=${page.items} empty="No notifications."
        columns=${[
          { label: 'Event', render: (n) => n.eventNumber ?? n.type },
          { label: 'About', render: (n) => n.focus ?? '—' },
          { label: 'Status', render: (n) => html`<${Badge} value=${n.status} />` },
          { label: 'Occurred', render: (n) => time(n.occurredAt) },
          { label: 'Attempts', render: (n) => n.attempts.length === 0 ? (n.nextAttemptAt ? `next ${time(n.nextAttemptAt)}` : 'none') : html`<ol class="attempts">${n.attempts.map((a) => html`<li>
              ${time(a.attemptedAt)}: <span class=${a.httpStatus >= 200 && a.httpStatus < 300 ? 'ok' : 'bad'}>${a.httpStatus ?? 'no answer'}</span>, ${a.latencyMs} ms${a.error ? html` — <span class="error">${a.error}</span>` : ''}</li>`)}</ol>` },
        ]} />
        <${Pager} label="Notifications" hasNext=${Boolean(page.next)} atFirst=${!before} onNext=${() => setBefore(page.next)} onFirst=${() => setBefore(undefined)} />`}<//>
    </section>`;
}
