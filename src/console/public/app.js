import { render } from './vendor/preact.js';
import { useEffect, useRef, useState } from './vendor/hooks.js';
import { actFor, call, currentSession, may, signIn, signOut } from './api.js';
import { html, parseRoute, useLoad, Loading, Json, href } from './ui.js';
import { Overview } from './views/overview.js';
import { Inbound, InboundEvent } from './views/inbound.js';
import { Sources } from './views/sources.js';
import { Waiting } from './views/waiting.js';
import { Deliveries, Delivery } from './views/deliveries.js';
import { Money, Patient, ClaimTimeline } from './views/money.js';

// [path, label, what it needs (api.js NEEDS)]
const NAV = [
  ['', 'Overview', 'overview'],
  ['inbound', 'Inbound', 'journal'],
  ['sources', 'Sources', 'sources'],
  ['waiting', 'Waiting payments', 'waiting'],
  ['deliveries', 'Deliveries', 'deliveries'],
  ['money', 'Money', 'money'],
];

function SignIn({ onSignedIn }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [id, setId] = useState('admin');
  const first = useRef(null);
  useEffect(() => first.current?.focus(), []);
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await signIn(String(form.get('clientId')).trim(), String(form.get('clientSecret'))));
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <h1>fhir-billing console</h1>
    <p>Sign in with an API client's id and secret: the <code>admin</code> client and its secret that the server printed at its first start, or any client of a tenant.</p>
    <form onSubmit=${submit} aria-describedby="signin-note">
      <label for="clientId">Client id</label>
      <input id="clientId" name="clientId" ref=${first} autocomplete="username" required value=${id} onInput=${(e) => setId(e.target.value)} />
      <label for="clientSecret">Client secret</label>
      <input id="clientSecret" name="clientSecret" type="password" autocomplete="current-password" required />
      <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
    <p id="signin-note" class="note">The token stays in this page's memory only: reloading the page signs you out.</p>
  </main>`;
}

function TenantPicker({ session, tenant, setTenant }) {
  const tenants = useLoad(() => (session.admin ? call('/admin/tenants').then((r) => r.tenants) : Promise.resolve([{ id: session.tenant }])), [session]);
  return html`<label class="tenant">Tenant
    <select value=${tenant} onChange=${(e) => setTenant(e.target.value)} disabled=${!session.admin}>
      ${(tenants.data ?? [{ id: tenant }]).map((t) => html`<option value=${t.id}>${t.id}${t.name ? ` — ${t.name}` : ''}</option>`)}
    </select></label>`;
}

function Resource({ type, id }) {
  const state = useLoad(() => call(`/fhir/${type}/${id}`), [type, id]);
  return html`<h1>${type}/${id}</h1><${Loading} state=${state}>${(r) => html`<${Json} value=${r} label=${`${type} ${id} as FHIR JSON`} />`}<//>`;
}

function Page({ route, ctx }) {
  const [view, a, b] = route.parts;
  const nav = NAV.find(([path]) => path === (view ?? ''));
  if (nav && !may(nav[2])) {
    const first = NAV.find(([, , need]) => may(need));
    return html`<h1 tabindex="-1">${nav[1]}</h1><p class="error" role="alert">This client's scopes do not cover ${nav[1]}.</p>
      ${first ? html`<p><a href=${href(first[0])}>${first[1]}</a></p>` : html`<p>They cover none of the console's views.</p>`}`;
  }
  switch (view ?? '') {
    case '': return html`<${Overview} ctx=${ctx} />`;
    case 'inbound': return a ? html`<${InboundEvent} ctx=${ctx} id=${a} />` : html`<${Inbound} ctx=${ctx} query=${route.query} />`;
    case 'sources': return html`<${Sources} ctx=${ctx} />`;
    case 'waiting': return html`<${Waiting} ctx=${ctx} query=${route.query} />`;
    case 'deliveries': return a ? html`<${Delivery} ctx=${ctx} id=${a} />` : html`<${Deliveries} ctx=${ctx} />`;
    case 'money':
      if (a === 'patient' && b) return html`<${Patient} ctx=${ctx} id=${b} />`;
      if (a === 'claim' && b) return html`<${ClaimTimeline} ctx=${ctx} id=${b} />`;
      return html`<${Money} ctx=${ctx} query=${route.query} />`;
    case 'resource': return html`<${Resource} type=${a} id=${b} />`;
    default: return html`<h1>Not found</h1><p><a href="#/">Overview</a></p>`;
  }
}

function App() {
  const [session, setSession] = useState(currentSession());
  const [tenant, setTenant] = useState(session?.tenant);
  const [route, setRoute] = useState(parseRoute());
  const main = useRef(null);
  useEffect(() => {
    const onHash = () => {
      setRoute(parseRoute());
      // Moving focus to the new page's heading tells keyboard and screen-reader users it changed.
      requestAnimationFrame(() => main.current?.querySelector('h1')?.focus());
    };
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  if (!session || !currentSession()) {
    return html`<${SignIn} onSignedIn=${(s) => {
      setSession(s);
      setTenant(s.tenant);
      actFor(s.tenant);
      // A tenant's client whose scopes skip the overview starts on the first view it may see.
      if (!may('overview')) location.hash = href(NAV.find(([, , need]) => may(need))?.[0] ?? '');
    }} />`;
  }
  // Every call follows the picked tenant: ?tenant= on /admin, X-Tenant on /fhir (admins only).
  actFor(tenant);
  const ctx = {
    session,
    tenant,
    adminTenant: tenant,
  };
  const current = route.parts[0] ?? '';
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); main.current?.querySelector('h1')?.focus(); }}>Skip to content</a>
    <header>
      <span class="brand">fhir-billing</span>
      <nav aria-label="Views"><ul>
        ${NAV.filter(([, , need]) => may(need)).map(([path, label]) => html`<li><a href=${href(path)} aria-current=${current === path ? 'page' : undefined}>${label}</a></li>`)}
      </ul></nav>
      <${TenantPicker} session=${session} tenant=${tenant} setTenant=${setTenant} />
      <span class="who" title=${session.clientId}>${session.clientId}</span>
      <button type="button" onClick=${() => { signOut(); setSession(null); location.hash = '#/'; }}>Sign out</button>
    </header>
    <main id="main" ref=${main}><${Page} key=${`${tenant}|${location.hash}`} route=${route} ctx=${ctx} /></main>`;
}

render(html`<${App} />`, document.getElementById('root'));
