import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { seal, tenantExists } from '../../auth/index.ts';
import type { SealingSettings } from '../../auth/index.ts';
import { generateSecret, hashSecret } from '../../auth/secrets.ts';
import type { Queryable } from '../../db/index.ts';
import { normalizeCidr } from '../../net/addresses.ts';
import { CuracelOptions } from '../curacel/options.ts';
import { InstaMedOptions } from '../instamed/options.ts';
import { X12SourceOptions } from '../x12-835/options.ts';
import { TyroOptions, rotateTyroTokens } from '../tyro/options.ts';
import * as store from './store.ts';
import type { SourceRow } from './store.ts';

/**
 * The webhook-source registry: one registered sender for one tenant, reached at
 * /api/webhooks/<kind>/<id>. What the admin API and the CLI do, validated here so both refuse the
 * same things the same way. Credentials we only verify (a Basic password) are generated, shown
 * once and stored as an scrypt hash; a signing secret (an HMAC key the sender signs with) cannot be
 * hashed, since verifying needs it, so it is generated or given, shown once and stored sealed.
 * The id is random, so the URL tells nothing.
 */
export type RegistryResult<T> = { ok: true; value: T } | { ok: false; status: number; message: string };

/** How much hashing costs and what seals: the parts of AuthSettings the registry needs. */
export type SecretSettings = SealingSettings & { hashCost: number };

/** What each kind adds: its options' schema, and which credentials those options call for. */
interface KindSpec {
  options: z.ZodType<Record<string, unknown>>;
  /** A Basic password we generate and only verify (kept as a hash). */
  usesPassword(options: Record<string, unknown>): boolean;
  /** An HMAC signing secret the sender signs its posts with (kept sealed). */
  usesSigningSecret(options: Record<string, unknown>): boolean;
  /** Other credentials the kind keeps hashed in its options, made new (undefined: it has none). */
  rotateOther?(options: Record<string, unknown>): { options: Record<string, unknown>; credentials: SourceCredentials } | undefined;
}

const KINDS: Record<string, KindSpec> = {
  instamed: { options: InstaMedOptions, usesPassword: (o) => o.auth === 'basic', usesSigningSecret: () => false },
  'x12-835': { options: X12SourceOptions, usesPassword: (o) => o.auth === 'basic', usesSigningSecret: () => false },
  'claims-vetting': { options: CuracelOptions, usesPassword: () => false, usesSigningSecret: () => true },
  'pre-authorization': { options: CuracelOptions, usesPassword: () => false, usesSigningSecret: () => true },
  tyro: {
    options: TyroOptions,
    usesPassword: () => false,
    usesSigningSecret: (o) => o.signed !== false,
    rotateOther: (o) => rotateTyroTokens(o as TyroOptions),
  },
};
export const SOURCE_KINDS = Object.keys(KINDS);

const Cidr = z.string().max(64).refine((c) => normalizeCidr(c) !== undefined, { error: (i) => `not an IP address or CIDR: ${String(i.input)}` });
const Uri = z.string().regex(/^[a-z][a-z0-9+.-]*:\S+$/i, 'an absolute URI').max(2048);

const Common = {
  name: z.string().trim().min(1).max(200),
  enabled: z.boolean(),
  allowedIps: z.array(Cidr).max(200),
  claimIdentifierSystem: Uri.nullable(),
  /** Given when the sender issues the secret (its dashboard shows it); else we generate one. */
  signingSecret: z.string().min(16, 'at least 16 characters').max(512).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces'),
};

const CreateInput = z.looseObject({
  tenant: z.string().min(1).max(63),
  kind: z.enum(SOURCE_KINDS as [string, ...string[]], { error: `kind must be one of: ${SOURCE_KINDS.join(', ')}` }),
  name: Common.name,
  enabled: Common.enabled.default(true),
  allowedIps: Common.allowedIps.default([]),
  claimIdentifierSystem: Common.claimIdentifierSystem.default(null),
  signingSecret: Common.signingSecret.optional(),
});
const PatchInput = z.looseObject({
  name: Common.name.optional(),
  enabled: Common.enabled.optional(),
  allowedIps: Common.allowedIps.optional(),
  claimIdentifierSystem: Common.claimIdentifierSystem.optional(),
  signingSecret: Common.signingSecret.optional(),
});
const COMMON_KEYS = new Set(['tenant', 'kind', 'name', 'enabled', 'allowedIps', 'claimIdentifierSystem', 'signingSecret']);

export interface SourceView {
  id: string;
  kind: string;
  tenant: string;
  name: string;
  url: string;
  enabled: boolean;
  allowedIps: string[];
  claimIdentifierSystem: string | null;
  /** Whether the source has a signing secret (never the secret itself). */
  signingSecretSet: boolean;
  [option: string]: unknown;
  createdAt: string;
  updatedAt: string;
}

/** Shown once: at creation, at rotation, and when a source changes to Basic or to signing. */
export interface SourceCredentials {
  username?: string;
  password?: string;
  /** Only when we generated it: a secret the operator gave is not echoed. */
  signingSecret?: string;
  /** tyro: the token of the unsigned webhooks' URL, and the header value they must carry. */
  urlToken?: string;
  requiredHeader?: { name: string; value: string };
}

export type SourceWithCredentials = SourceView & { credentials?: SourceCredentials };

export const webhookPath = (kind: string, id: string): string => `/api/webhooks/${kind}/${id}`;

export function viewOf(row: SourceRow): SourceView {
  return {
    id: row.id,
    kind: row.kind,
    tenant: row.tenantId,
    name: row.name,
    url: webhookPath(row.kind, row.id),
    enabled: row.enabled,
    allowedIps: row.allowedIps,
    claimIdentifierSystem: row.claimIdentifierSystem,
    signingSecretSet: row.signingSecretSealed !== null,
    ...row.options,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

const problems = (e: z.ZodError): string =>
  `Invalid webhook source: ${e.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ')}`;
const invalid = (message: string) => ({ ok: false as const, status: 400, message });
const kindOptions = (body: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(body).filter(([k]) => !COMMON_KEYS.has(k)));

/** A fresh Basic credential: the username is kept in the options, the password only as a hash. */
async function issuePassword(kind: string, hashCost: number): Promise<{ credentials: { username: string; password: string }; secretHash: string }> {
  const credentials = { username: `${kind}-${randomBytes(6).toString('hex')}`, password: generateSecret() };
  return { credentials, secretHash: await hashSecret(credentials.password, hashCost) };
}

/** The given signing secret, or a generated one (then shown once), sealed for storing. */
async function issueSigningSecret(conn: Queryable, secrets: SecretSettings, given: string | undefined): Promise<{ credentials: SourceCredentials; sealed: string }> {
  const secret = given ?? generateSecret();
  return { credentials: given === undefined ? { signingSecret: secret } : {}, sealed: await seal(conn, secrets, secret) };
}

const shown = (c: SourceCredentials | undefined): { credentials?: SourceCredentials } =>
  c && Object.keys(c).length > 0 ? { credentials: c } : {};

export async function createSource(conn: Queryable, secrets: SecretSettings, body: unknown): Promise<RegistryResult<SourceWithCredentials>> {
  const common = CreateInput.safeParse(body);
  if (!common.success) return invalid(problems(common.error));
  const c = common.data;
  const spec = KINDS[c.kind];
  const options = spec.options.safeParse(kindOptions(c));
  if (!options.success) return invalid(problems(options.error));
  if (!(await tenantExists(conn, c.tenant))) return { ok: false, status: 404, message: `Unknown tenant: ${c.tenant}` };
  if (c.signingSecret !== undefined && !spec.usesSigningSecret(options.data)) return invalid(`A ${c.kind} source with these options signs nothing: signingSecret does not apply`);
  const issued = spec.usesPassword(options.data) ? await issuePassword(c.kind, secrets.hashCost) : undefined;
  const signing = spec.usesSigningSecret(options.data) ? await issueSigningSecret(conn, secrets, c.signingSecret) : undefined;
  const row = await store.insertSource(conn, {
    tenantId: c.tenant,
    id: `src_${randomBytes(12).toString('base64url')}`,
    kind: c.kind,
    name: c.name,
    enabled: c.enabled,
    allowedIps: c.allowedIps.map((x) => normalizeCidr(x)!),
    claimIdentifierSystem: c.claimIdentifierSystem,
    options: { ...options.data, ...(issued && { basicUsername: issued.credentials.username }) },
    secretHash: issued?.secretHash ?? null,
    signingSecretSealed: signing?.sealed ?? null,
  });
  return { ok: true, value: { ...viewOf(row), ...shown({ ...issued?.credentials, ...signing?.credentials }) } };
}

export async function listSourceViews(conn: Queryable, tenant: string | undefined): Promise<SourceView[]> {
  return (await store.listSources(conn, tenant)).map(viewOf);
}

export async function getSource(conn: Queryable, id: string): Promise<RegistryResult<SourceView>> {
  const row = await store.findSource(conn, id);
  return row ? { ok: true, value: viewOf(row) } : notFound(id);
}

const notFound = (id: string) => ({ ok: false as const, status: 404, message: `Unknown webhook source: ${id}` });

/**
 * Changes what is given; kind options merge over the current ones. Changing auth to Basic issues a
 * username and password (shown in the answer); changing away from it forgets them. The same for
 * a signing secret: issued when the options come to call for one, replaced by a given
 * `signingSecret`, forgotten when they no longer do.
 */
export async function patchSource(conn: Queryable, secrets: SecretSettings, id: string, body: unknown): Promise<RegistryResult<SourceWithCredentials>> {
  const row = await store.findSource(conn, id);
  if (!row) return notFound(id);
  if (body !== null && typeof body === 'object' && ('tenant' in body || 'kind' in body)) return invalid('A webhook source keeps its tenant and kind; register a new one instead');
  const patch = PatchInput.safeParse(body);
  if (!patch.success) return invalid(problems(patch.error));
  const spec = KINDS[row.kind];
  const { basicUsername, ...current } = row.options;
  const options = spec.options.safeParse({ ...current, ...kindOptions(patch.data) });
  if (!options.success) return invalid(problems(options.error));
  const wasPassword = row.secretHash !== null;
  const issued = spec.usesPassword(options.data) && !wasPassword ? await issuePassword(row.kind, secrets.hashCost) : undefined;
  const keepsPassword = spec.usesPassword(options.data) && wasPassword;
  const signs = spec.usesSigningSecret(options.data);
  if (patch.data.signingSecret !== undefined && !signs) return invalid(`A ${row.kind} source with these options signs nothing: signingSecret does not apply`);
  const signing = signs && (patch.data.signingSecret !== undefined || row.signingSecretSealed === null)
    ? await issueSigningSecret(conn, secrets, patch.data.signingSecret)
    : undefined;
  const updated = await store.updateSource(conn, {
    tenantId: row.tenantId,
    id,
    name: patch.data.name ?? row.name,
    enabled: patch.data.enabled ?? row.enabled,
    allowedIps: patch.data.allowedIps?.map((x) => normalizeCidr(x)!) ?? row.allowedIps,
    claimIdentifierSystem: patch.data.claimIdentifierSystem === undefined ? row.claimIdentifierSystem : patch.data.claimIdentifierSystem,
    options: {
      ...options.data,
      ...(keepsPassword && { basicUsername }),
      ...(issued && { basicUsername: issued.credentials.username }),
    },
    secretHash: keepsPassword ? row.secretHash : (issued?.secretHash ?? null),
    signingSecretSealed: signs ? (signing?.sealed ?? row.signingSecretSealed) : null,
  });
  if (!updated) return notFound(id);
  return { ok: true, value: { ...viewOf(updated), ...shown({ ...issued?.credentials, ...signing?.credentials }) } };
}

export async function deleteSourceById(conn: Queryable, id: string): Promise<RegistryResult<{ deleted: string }>> {
  const row = await store.findSource(conn, id);
  if (!row || !(await store.deleteSource(conn, row.tenantId, id))) return notFound(id);
  return { ok: true, value: { deleted: id } };
}

/**
 * New credentials (a Basic password, a signing secret, a tyro source's URL token and header value:
 * whichever it has); the old ones stop working at once.
 */
export async function rotateCredentials(conn: Queryable, secrets: SecretSettings, id: string): Promise<RegistryResult<SourceWithCredentials>> {
  const row = await store.findSource(conn, id);
  if (!row) return notFound(id);
  const spec = KINDS[row.kind];
  const password = spec.usesPassword(row.options);
  const signs = spec.usesSigningSecret(row.options);
  const other = spec.rotateOther?.(row.options);
  if (!password && !signs && !other) {
    return invalid(
      row.kind === 'tyro'
        ? 'This tyro source has no credentials to rotate: it is unsigned and has neither a URL token nor a required header'
        : "This source authenticates with OAuth bearer tokens: rotate its client's secret (POST /admin/clients/:id/rotate-secret)",
    );
  }
  const issued = password ? await issuePassword(row.kind, secrets.hashCost) : undefined;
  const signing = signs ? await issueSigningSecret(conn, secrets, undefined) : undefined;
  const options = other?.options ?? row.options;
  const updated = await store.updateSource(conn, {
    ...row,
    options: issued ? { ...options, basicUsername: issued.credentials.username } : options,
    secretHash: issued?.secretHash ?? row.secretHash,
    signingSecretSealed: signing?.sealed ?? row.signingSecretSealed,
  });
  if (!updated) return notFound(id);
  return { ok: true, value: { ...viewOf(updated), ...shown({ ...issued?.credentials, ...signing?.credentials, ...other?.credentials }) } };
}
