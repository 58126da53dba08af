import { readFileSync } from 'node:fs';
import type { SecretSettings } from '../inbound/index.ts';
import { createSource, deleteSourceById, getSource, listSourceViews, patchSource, rotateCredentials } from '../inbound/index.ts';
import type { Database } from '../db/index.ts';

/**
 * `fhir-billing sources ...`: the webhook-source registry (inbound/sources/registry.ts), the same
 * verbs and checks as /admin/webhook-sources. Credentials are printed once.
 */
export const SOURCES_USAGE = `  sources create --tenant T --kind instamed --name N [--auth basic|oauth]
                 [--allowed-ips CIDR,...] [--claim-id-system URI] [--bill-id-field FIELD]
                 [--required-header "Name: value"] [--field-map FILE.json] [--disabled]
                 [--signing-secret S] [--accept-unsigned] [--currency NGN]   (claims-vetting, pre-authorization)
                 [--unsigned] [--url-token T] [--funder F] [--timestamp-tolerance SECONDS]   (tyro)
                                                prints the source, its url and (Basic) its
                                                username and password, or its signing secret, once
  sources list [--tenant T]
  sources show [--id] SOURCE_ID
  sources update [--id] SOURCE_ID [--name N] [--auth ...] [--allowed-ips ...|""] [--enabled|--disabled]
                 [--claim-id-system URI|""] [--bill-id-field F] [--required-header "..."|""] [--field-map FILE]
                 [--url-token T] [--funder F] [--timestamp-tolerance SECONDS]
  sources delete [--id] SOURCE_ID
  sources rotate-credentials [--id] SOURCE_ID   prints the new password, signing secret or tyro
                                                URL token and header value, once
`;

export const SOURCES_OPTIONS = {
  kind: { type: 'string' },
  auth: { type: 'string' },
  'allowed-ips': { type: 'string' },
  'claim-id-system': { type: 'string' },
  'bill-id-field': { type: 'string' },
  'required-header': { type: 'string' },
  'field-map': { type: 'string' },
  'signing-secret': { type: 'string' },
  'accept-unsigned': { type: 'boolean' },
  currency: { type: 'string' },
  unsigned: { type: 'boolean' },
  'url-token': { type: 'string' },
  funder: { type: 'string' },
  'timestamp-tolerance': { type: 'string' },
  enabled: { type: 'boolean' },
  disabled: { type: 'boolean' },
} as const;

type Values = Record<string, string | boolean | undefined>;
type Outcome = { ok: true; value: unknown } | { ok: false; message: string };

/** The body the admin API would get, from the options given (only those). */
function bodyOf(values: Values): Record<string, unknown> {
  const s = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const body: Record<string, unknown> = {};
  if (s('tenant') !== undefined) body.tenant = s('tenant');
  if (s('kind') !== undefined) body.kind = s('kind');
  if (s('name') !== undefined) body.name = s('name');
  if (s('auth') !== undefined) body.auth = s('auth');
  if (s('allowed-ips') !== undefined) body.allowedIps = s('allowed-ips')!.split(',').map((c) => c.trim()).filter(Boolean);
  if (s('claim-id-system') !== undefined) body.claimIdentifierSystem = s('claim-id-system') || null;
  if (s('bill-id-field') !== undefined) body.billIdField = s('bill-id-field');
  const header = s('required-header');
  if (header !== undefined) {
    const colon = header.indexOf(':');
    body.requiredHeader = header === '' ? null : colon < 0 ? { name: header.trim(), value: '' } : { name: header.slice(0, colon).trim(), value: header.slice(colon + 1).trim() };
  }
  if (s('field-map') !== undefined) body.fieldMap = JSON.parse(readFileSync(s('field-map')!, 'utf8'));
  if (s('signing-secret') !== undefined) body.signingSecret = s('signing-secret');
  if (values['accept-unsigned']) body.acceptUnsigned = true;
  if (s('currency') !== undefined) body.currency = s('currency');
  if (values.unsigned) body.signed = false;
  if (s('url-token') !== undefined) body.urlToken = s('url-token');
  if (s('funder') !== undefined) body.funder = s('funder');
  // A number for the schema to check; text that is not one stays text, so the schema names it.
  const tolerance = s('timestamp-tolerance');
  if (tolerance !== undefined) body.timestampToleranceSeconds = /^\d+$/.test(tolerance) ? Number(tolerance) : tolerance;
  if (values.enabled) body.enabled = true;
  if (values.disabled) body.enabled = false;
  return body;
}

const outcome = <T>(r: { ok: true; value: T } | { ok: false; message: string }): Outcome => (r.ok ? { ok: true, value: r.value } : { ok: false, message: r.message });

export async function runSourceCommand(db: Database, secrets: SecretSettings, action: string | undefined, values: Values, need: (name: string) => string): Promise<Outcome | undefined> {
  switch (action) {
    case 'create':
      return outcome(await createSource(db, secrets, bodyOf(values)));
    case 'list':
      return { ok: true, value: { sources: await listSourceViews(db, typeof values.tenant === 'string' ? values.tenant : undefined) } };
    case 'show':
      return outcome(await getSource(db, need('id')));
    case 'update': {
      const id = need('id');
      return outcome(await patchSource(db, secrets, id, bodyOf({ ...values, id: undefined })));
    }
    case 'delete':
      return outcome(await deleteSourceById(db, need('id')));
    case 'rotate-credentials':
      return outcome(await rotateCredentials(db, secrets, need('id')));
    default:
      return undefined;
  }
}
