// The console's only way to the server: our public APIs, with a token kept in this module's
// memory (never a cookie or localStorage), so a reload signs out and the console can do nothing a
// curl client with the same credentials could not.
let session = null;
/** The tenant an admin picked; /fhir calls name it in X-Tenant (the server allows that to admins only). */
let acting = null;

export function currentSession() {
  return session;
}

export function signOut() {
  session = null;
  acting = null;
}

export function actFor(tenant) {
  acting = tenant;
}

/**
 * Whether the session's scopes cover `scope` (SMART system scopes: system/<Type|*>.<cruds|read|write|*>),
 * the same rule the server applies (src/auth/scopes.ts), so the console offers only what it may do.
 */
export function covers(scope) {
  if (!session) return false;
  const letters = (a) => ({ read: 'rs', write: 'cud', '*': 'cruds' })[a] ?? a;
  const parse = (s) => {
    const m = /^system\/([^.]+)\.(.+)$/.exec(s);
    return m ? { type: m[1], letters: letters(m[2]) } : null;
  };
  const want = parse(scope);
  if (!want) return session.scopes.includes(scope);
  const held = session.scopes.map(parse).filter(Boolean);
  return [...want.letters].every((l) => held.some((h) => (h.type === '*' || (want.type !== '*' && h.type === want.type)) && h.letters.includes(l)));
}

/** What each view needs of a tenant's client (the server's rule: src/auth/tenant-access.ts); admin reads all. */
export const NEEDS = {
  journal: ['system/*.rs'],
  sources: ['system/*.rs'],
  // Registering, changing, rotating, disabling a source: it writes every kind of resource for the tenant.
  manageSources: ['system/*.rs', 'system/*.cud'],
  overview: ['system/*.rs'],
  deliveries: ['system/Subscription.rs'],
  money: ['system/Claim.rs', 'system/ClaimResponse.rs', 'system/PaymentReconciliation.rs', 'system/PatientCredit.rs'],
  waiting: ['system/PaymentReconciliation.rs'],
};

export function may(view) {
  return Boolean(session?.admin) || (NEEDS[view] ?? []).every(covers);
}

/** Signs in through the token endpoint curl uses (POST /api/token). */
export async function signIn(clientId, clientSecret) {
  const res = await fetch('/api/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ clientId, clientSecret }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || !body.accessToken) throw new Error(body.error || `Sign-in failed (${res.status})`);
  const claims = JSON.parse(atob(body.accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  const scopes = String(claims.scope || '').split(' ');
  session = { token: body.accessToken, clientId, tenant: claims.tenant, scopes, admin: scopes.includes('admin'), expiresAt: Date.now() + body.expiresIn * 1000 };
  return session;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** One call; JSON in and out. Errors carry the server's own words ({error} or an OperationOutcome). */
export async function call(path, { method = 'GET', body, fhir = path.startsWith('/fhir') } = {}) {
  if (!session) throw new ApiError(401, 'Not signed in');
  const headers = { Authorization: `Bearer ${session.token}`, Accept: fhir ? 'application/fhir+json' : 'application/json' };
  if (fhir && acting && acting !== session.tenant) headers['X-Tenant'] = acting;
  if (body !== undefined) headers['Content-Type'] = fhir ? 'application/fhir+json' : 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { error: text };
  }
  if (!res.ok) {
    const message = json?.error ?? json?.issue?.map((i) => i.details?.text ?? i.diagnostics ?? i.code).join('; ') ?? `HTTP ${res.status}`;
    if (res.status === 401) session = null;
    throw new ApiError(res.status, typeof message === 'string' ? message : JSON.stringify(message));
  }
  return json;
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

/** FHIR search → the resources of its entries (matches only). */
export async function search(type, params) {
  const bundle = await call(`/fhir/${type}${qs(params)}`);
  return { resources: (bundle.entry ?? []).filter((e) => e.search?.mode !== 'include').map((e) => e.resource), total: bundle.total, next: bundle.link?.find((l) => l.relation === 'next')?.url };
}
