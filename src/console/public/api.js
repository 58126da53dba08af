// The console's only way to the server: our public APIs, with a token kept in this module's
// memory (never a cookie or localStorage), so a reload signs out and the console can do nothing a
// curl client with the same credentials could not.
let session = null;

export function currentSession() {
  return session;
}

export function signOut() {
  session = null;
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
