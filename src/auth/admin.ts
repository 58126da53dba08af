import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { bookCurrencyProblem } from '../iso4217.ts';
import type { Queryable } from '../db/index.ts';
import { checkJwksUrl } from './jwks-fetch.ts';
import { activeSigningKey } from './keys.ts';
import { ok, refuse } from './result.ts';
import type { Result } from './result.ts';
import { ADMIN_SCOPE, ALL_FHIR_SCOPE, DEFAULT_CLIENT_SCOPES, WEBHOOK_SCOPE, parseScopes } from './scopes.ts';
import { generateSecret, hashSecret, verifySecret } from './secrets.ts';
import type { AuthSettings } from './settings.ts';
import * as store from './store.ts';

/**
 * Tenants and API clients: what the admin API (/admin) and the command line (fhir-billing) do.
 * Inputs are validated here, so both front ends refuse the same things the same way.
 */
/** A book currency: an ISO 4217 code of at most 2 minor digits (money columns are numeric(18,2)). */
const Currency = z
  .string()
  .max(16)
  .superRefine((code, ctx) => {
    const problem = bookCurrencyProblem(code);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const TenantInput = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes, at most 63'),
  name: z.string().trim().min(1).max(200),
  currency: Currency.default('USD'),
});

const TenantChange = z.object({ currency: Currency }).strict();

/** A public key: no private or symmetric members. */
const PublicJwk = z
  .object({ kty: z.enum(['RSA', 'EC', 'OKP']) })
  .catchall(z.unknown())
  .refine((k) => !['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((m) => m in k), 'jwks must hold public keys only');

const ClientInput = z
  .object({
    tenant: z.string().min(1).max(63),
    name: z.string().trim().min(1).max(200),
    scopes: z.union([z.array(z.string()), z.string()]).optional(),
    jwksUrl: z.string().max(2048).optional(),
    jwks: z.object({ keys: z.array(PublicJwk).min(1).max(20) }).optional(),
  })
  .refine((c) => !(c.jwks && c.jwksUrl), 'Give jwks or jwksUrl, not both');

export type TenantInput = z.input<typeof TenantInput>;
export type ClientInput = z.input<typeof ClientInput>;

/** What a client is told once, at creation and at each secret rotation. */
export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
  tenant: string;
  scopes: string[];
}

export interface ClientView {
  clientId: string;
  tenant: string;
  name: string;
  scopes: string[];
  jwksUrl?: string;
  jwks?: boolean;
  createdAt: string;
}

export const BOOTSTRAP_SCOPES: readonly string[] = [ALL_FHIR_SCOPE, WEBHOOK_SCOPE, ADMIN_SCOPE];

function invalid(error: z.ZodError): ReturnType<typeof refuse> {
  const problems = error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
  return refuse(400, 'invalid_request', `Invalid request body: ${problems.join('; ')}`);
}

export interface TenantView {
  id: string;
  name: string;
  /** The book currency (ISO 4217). */
  currency: string;
}

export async function createTenant(db: Queryable, input: unknown): Promise<Result<TenantView>> {
  const parsed = TenantInput.safeParse(input);
  if (!parsed.success) return invalid(parsed.error);
  const { id, name, currency } = parsed.data;
  if (!(await store.insertTenant(db, id, name, currency))) return refuse(409, 'conflict', `Tenant ${id} already exists`);
  return ok({ id, name, currency });
}

/**
 * The body of a change of a tenant (PATCH /admin/tenants/:id, tenants set-currency): its book
 * currency, nothing else. Billing's changeBookCurrency makes the change.
 */
export function parseTenantChange(input: unknown): Result<{ currency: string }> {
  const parsed = TenantChange.safeParse(input);
  return parsed.success ? ok(parsed.data) : invalid(parsed.error);
}

export async function createClient(db: Queryable, settings: AuthSettings, input: unknown): Promise<Result<ClientCredentials>> {
  const parsed = ClientInput.safeParse(input);
  if (!parsed.success) return invalid(parsed.error);
  const c = parsed.data;
  const scopes = parseScopes(c.scopes ?? DEFAULT_CLIENT_SCOPES);
  if ('invalid' in scopes) return refuse(400, 'invalid_scope', `Unknown scope: ${scopes.invalid.join(' ')}`);
  if (c.jwksUrl) {
    const problem = checkJwksUrl(c.jwksUrl, settings.allowPrivateNetworks);
    if (problem) return refuse(400, 'invalid_request', problem);
  }
  if (!(await store.tenantExists(db, c.tenant))) return refuse(404, 'not_found', `Unknown tenant: ${c.tenant}`);
  const clientSecret = generateSecret();
  const row = await store.insertClient(db, {
    id: randomUUID(),
    tenantId: c.tenant,
    name: c.name,
    secretHash: await hashSecret(clientSecret, settings.hashCost),
    scopes: [...scopes.scopes.list],
    jwks: c.jwks ? JSON.stringify(c.jwks) : null,
    jwksUrl: c.jwksUrl ?? null,
  });
  return ok({ clientId: row.id, clientSecret, tenant: row.tenantId, scopes: row.scopes });
}

export async function listTenants(db: Queryable): Promise<(TenantView & { createdAt: string })[]> {
  return (await store.selectTenants(db)).map((t) => ({ id: t.id, name: t.name, currency: t.currency, createdAt: new Date(t.createdAt).toISOString() }));
}

/** The tenant's clients (every tenant's without one); an unknown tenant is a 404, not an empty list. */
export async function listClients(db: Queryable, tenant: string | undefined): Promise<Result<ClientView[]>> {
  if (tenant !== undefined && !(await store.tenantExists(db, tenant))) return refuse(404, 'not_found', `Unknown tenant: ${tenant}`);
  return ok((await store.selectClients(db, tenant)).map((c) => ({
    clientId: c.id,
    tenant: c.tenantId,
    name: c.name,
    scopes: c.scopes,
    ...(c.jwksUrl && { jwksUrl: c.jwksUrl }),
    ...(c.jwks && { jwks: true }),
    createdAt: new Date(c.createdAt).toISOString(),
  })));
}

/** Deletes a client; its tokens stop working at once (verification asks whether it exists). */
export async function deleteClient(db: Queryable, clientId: string): Promise<Result<void>> {
  return (await store.deleteClient(db, clientId)) ? ok(undefined) : refuse(404, 'not_found', `Unknown client: ${clientId}`);
}

/** A new secret, shown once; the old secret and every token issued with it stop working. */
export async function rotateSecret(db: Queryable, settings: AuthSettings, clientId: string): Promise<Result<ClientCredentials>> {
  const clientSecret = generateSecret();
  const row = await store.updateClientSecret(db, clientId, await hashSecret(clientSecret, settings.hashCost));
  if (!row) return refuse(404, 'not_found', `Unknown client: ${clientId}`);
  return ok({ clientId: row.id, clientSecret, tenant: row.tenantId, scopes: row.scopes });
}

/**
 * BOOTSTRAP_TENANT, BOOTSTRAP_CLIENT_ID and BOOTSTRAP_CLIENT_SECRET at start: the tenant exists,
 * and the client exists in it with every scope plus admin and this secret (re-hashed only when
 * the secret changed).
 */
export async function ensureBootstrapClient(
  db: Queryable,
  settings: AuthSettings,
  bootstrap: { tenant: string; clientId: string; clientSecret: string },
): Promise<void> {
  await store.insertTenant(db, bootstrap.tenant, 'Bootstrap tenant');
  const existing = await store.selectClient(db, bootstrap.clientId);
  const secretHash =
    existing && (await verifySecret(bootstrap.clientSecret, existing.secretHash))
      ? existing.secretHash
      : await hashSecret(bootstrap.clientSecret, settings.hashCost);
  await store.upsertClient(db, {
    id: bootstrap.clientId,
    tenantId: bootstrap.tenant,
    name: 'Bootstrap client',
    secretHash,
    scopes: [...BOOTSTRAP_SCOPES],
    jwks: null,
    jwksUrl: null,
  });
}

/** At start: the bootstrap tenant, the bootstrap client when configured, and a signing key. */
const FIRST_CLIENT_ID = 'admin';

/**
 * At start: the bootstrap tenant, the bootstrap client when BOOTSTRAP_CLIENT_* are set, and a
 * signing key. On a first start without them, when no API client exists at all, it creates one
 * (`admin`, every scope plus admin) and returns its credentials, to be shown once: so that
 * `npm ci && npm start` alone gives a server a new user can call.
 */
export async function bootstrapAuth(
  db: Queryable,
  settings: AuthSettings,
  bootstrap: { tenant: string; clientId?: string; clientSecret?: string },
): Promise<ClientCredentials | undefined> {
  await store.insertTenant(db, bootstrap.tenant, 'Bootstrap tenant');
  let firstClient: ClientCredentials | undefined;
  if (bootstrap.clientId && bootstrap.clientSecret) {
    await ensureBootstrapClient(db, settings, { tenant: bootstrap.tenant, clientId: bootstrap.clientId, clientSecret: bootstrap.clientSecret });
  } else if ((await store.selectClients(db, undefined)).length === 0) {
    const clientSecret = generateSecret();
    await ensureBootstrapClient(db, settings, { tenant: bootstrap.tenant, clientId: FIRST_CLIENT_ID, clientSecret });
    firstClient = { clientId: FIRST_CLIENT_ID, clientSecret, tenant: bootstrap.tenant, scopes: [...BOOTSTRAP_SCOPES] };
  }
  await activeSigningKey(db);
  return firstClient;
}
