import { useState } from '../vendor/hooks.js';
import { call, may, qs } from '../api.js';
import { html, useLoad, Loading, Table, Badge, Outcome, useAction, Json, time, href } from '../ui.js';

/** Webhook sources of the tenant: list, register, rotate credentials, disable or enable. */
export function Sources({ ctx }) {
  const state = useLoad(() => call(`/admin/webhook-sources${qs({ tenant: ctx.adminTenant })}`), [ctx.adminTenant]);
  const action = useAction();
  const [shown, setShown] = useState(null);
  // The server's rule (src/auth/tenant-access.ts): admin, or system/*.cruds for the client's own tenant.
  const mayManage = may('manageSources');
  const register = async (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    const created = await action.run(() => call('/admin/webhook-sources', { method: 'POST', body: { tenant: ctx.adminTenant, kind: f.kind, name: f.name } }), (s) => `Registered ${s.name}: ${s.url}`);
    if (created) {
      setShown(created);
      e.target.reset();
      state.reload();
    }
  };
  const rotate = async (s) => {
    const r = await action.run(() => call(`/admin/webhook-sources/${s.id}/rotate-credentials`, { method: 'POST' }), `New credentials for ${s.name}; the old ones no longer work`);
    if (r) setShown(r);
  };
  const toggle = async (s) => {
    await action.run(() => call(`/admin/webhook-sources/${s.id}`, { method: 'PATCH', body: { enabled: !s.enabled } }), `${s.name} ${s.enabled ? 'disabled' : 'enabled'}`);
    state.reload();
  };
  return html`<h1 tabindex="-1">Webhook sources</h1>
    <p>Senders registered for tenant <strong>${ctx.adminTenant}</strong>, each posting to its own URL. The Cair webhook (<code>/api/webhooks/patient-payment</code>) needs none: it takes a bearer token.</p>
    <${Outcome} outcome=${action.outcome} />
    ${shown?.credentials && html`<section class="secret" aria-labelledby="cred-h"><h2 id="cred-h">Credentials for ${shown.name}, shown once</h2>
      <${Json} value=${shown.credentials} label="The new credentials" /><button type="button" onClick=${() => setShown(null)}>I have kept them</button></section>`}
    <${Loading} state=${state}>${(r) => html`<${Table} caption="Sources" rows=${r.sources} empty="No sources registered."
      columns=${[
        { label: 'Name', key: 'name' },
        { label: 'Kind', key: 'kind' },
        { label: 'URL', render: (s) => html`<code>${s.url}</code>` },
        { label: 'State', render: (s) => html`<${Badge} value=${s.enabled ? 'enabled' : 'disabled'} />` },
        { label: 'Created', render: (s) => time(s.createdAt) },
        { label: 'Journal', render: (s) => html`<a href=${href('inbound', { sourceId: s.id })}>messages</a>` },
        { label: 'Actions', render: (s) => !mayManage ? '—' : html`<button type="button" onClick=${() => rotate(s)} disabled=${action.busy}>Rotate credentials<span class="sr"> of ${s.name}</span></button>
            <button type="button" onClick=${() => toggle(s)} disabled=${action.busy}>${s.enabled ? 'Disable' : 'Enable'}<span class="sr"> ${s.name}</span></button>` },
      ]} />`}<//>
    ${!mayManage ? html`<p class="note">Registering, rotating and disabling sources takes the <code>admin</code> scope, or <code>system/*.cruds</code> for this client's own tenant.</p>` : html`<form class="panel" onSubmit=${register} aria-labelledby="reg-h">
      <h2 id="reg-h">Register a source</h2>
      <label>Kind <select name="kind"><option value="instamed">instamed</option><option value="x12-835">x12-835 (payer remittances)</option></select></label>
      <label>Name <input name="name" required maxlength="200" /></label>
      <button type="submit" disabled=${action.busy}>Register</button>
    </form>`}`;
}
