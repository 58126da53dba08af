import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  createClient,
  createTenant,
  deleteClient,
  listClients,
  listSigningKeys,
  listTenants,
  parseTenantChange,
  retireSigningKey,
  tenantExists,
  rotateSecret,
  rotateSigningKeys,
} from '../auth/index.ts';
import type { AuthSettings } from '../auth/index.ts';
import { changeBookCurrency, claimIdSystem, setClaimIdSystem } from '../billing/index.ts';
import { migrate } from '../db/index.ts';
import type { Database } from '../db/index.ts';
import { REMITTANCE_USAGE, importRemittanceFile } from './remittances.ts';
import type { Progress } from './remittances.ts';
import { OPS_OPTIONS, OPS_USAGE, runOpsCommand } from './ops.ts';
import { SOURCES_OPTIONS, SOURCES_USAGE, runSourceCommand } from './sources.ts';
import { REINDEX_OPTIONS, REINDEX_USAGE, runReindex } from './reindex.ts';

export const USAGE = `usage: fhir-billing <command> [options]

  help                                          this text
  migrate                                       apply pending migrations
  tenants create --id ID --name NAME [--currency AUD]
                                                the book currency (ISO 4217), default USD
  tenants set-currency --id ID --currency CODE  refused once money is booked for the tenant
  tenants list
  clients create --tenant T --name N [--scopes "system/Claim.rs webhook ..."]
                 [--jwks-url URL | --jwks FILE]  prints the secret, once
  clients list [--tenant T]                     an unknown tenant is an error
  clients delete [--id] CLIENT_ID               its tokens stop working at once
  clients rotate-secret [--id] CLIENT_ID        prints the new secret, once
  keys rotate [--grace SECONDS]                 new signing key; old ones verify for SECONDS
                                                (default TOKEN_TTL_SECONDS) and then retire
  keys retire [--kid] KID                       stop verifying one key's tokens now
  keys list                                     every signing key: signing, verifying or retired
  billing claim-id-system --tenant T [--system URI | --reset]
                                                the Claim.identifier system webhook bill ids are
                                                looked up in (default the Cair claim-id system)
${SOURCES_USAGE}${OPS_USAGE}
${REMITTANCE_USAGE}
${REINDEX_USAGE}
Runs on the database the server's environment names (DATABASE_URL, DATABASE_SCHEMA, DATA_DIR).
`;

/** What a command prints: JSON on stdout (code 0), {error} on stderr (1), usage on stderr (2). */
export interface CommandOutput {
  code: number;
  stdout: string;
  stderr: string;
}

const OPTIONS = {
  id: { type: 'string' },
  name: { type: 'string' },
  tenant: { type: 'string' },
  scopes: { type: 'string' },
  'jwks-url': { type: 'string' },
  jwks: { type: 'string' },
  kid: { type: 'string' },
  grace: { type: 'string' },
  system: { type: 'string' },
  file: { type: 'string' },
  reset: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  ...SOURCES_OPTIONS,
  ...OPS_OPTIONS,
  ...REINDEX_OPTIONS,
} as const;

class UsageError extends Error {}

type Outcome = { ok: true; value: unknown } | { ok: false; message: string };

/** Parses `args` (argv without node and the script) and runs the command. */
export async function runCommand(db: Database, settings: AuthSettings, args: string[], progress?: Progress): Promise<CommandOutput> {
  try {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: OPTIONS });
    // `clients delete ID` works as well as `clients delete --id ID` (and `keys retire KID`).
    const [group, action, target, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
    const command = [group, action].filter(Boolean).join(' ');
    if (command === 'help') return { code: 0, stdout: USAGE, stderr: '' };
    const options = target === undefined ? values : { [group === 'keys' ? 'kid' : group === 'remittance' ? 'file' : 'id']: target, ...values };
    const outcome = await run(db, settings, command, options, progress);
    return outcome.ok
      ? { code: 0, stdout: `${JSON.stringify(outcome.value, null, 2)}\n`, stderr: '' }
      : { code: 1, stdout: '', stderr: `${JSON.stringify({ error: outcome.message })}\n` };
  } catch (err) {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    if (!usage) throw err;
    return { code: 2, stdout: '', stderr: `${(err as Error).message}\n\n${USAGE}` };
  }
}

async function run(db: Database, settings: AuthSettings, command: string, values: Record<string, string | boolean | undefined>, progress?: Progress): Promise<Outcome> {
  const need = (name: string): string => {
    const v = values[name];
    if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
    return v;
  };
  const optional = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  switch (command) {
    case 'migrate':
      return { ok: true, value: { applied: await migrate(db) } };
    case 'tenants create':
      return createTenant(db, { id: need('id'), name: need('name'), ...(optional('currency') !== undefined && { currency: optional('currency') }) });
    case 'tenants set-currency': {
      const change = parseTenantChange({ currency: need('currency') });
      return change.ok ? changeBookCurrency(db, need('id'), change.value.currency) : change;
    }
    case 'tenants list':
      return { ok: true, value: { tenants: await listTenants(db) } };
    case 'clients create': {
      const jwksFile = optional('jwks');
      return createClient(db, settings, {
        tenant: need('tenant'),
        name: need('name'),
        scopes: optional('scopes'),
        jwksUrl: optional('jwks-url'),
        jwks: jwksFile === undefined ? undefined : JSON.parse(readFileSync(jwksFile, 'utf8')),
      });
    }
    case 'clients list': {
      const r = await listClients(db, optional('tenant'));
      return r.ok ? { ok: true, value: { clients: r.value } } : r;
    }
    case 'clients delete': {
      const id = need('id');
      const r = await deleteClient(db, id);
      return r.ok ? { ok: true, value: { deleted: id } } : r;
    }
    case 'clients rotate-secret':
      return rotateSecret(db, settings, need('id'));
    case 'keys rotate': {
      const grace = optional('grace') === undefined ? settings.tokenTtlSeconds : Number(optional('grace'));
      if (!Number.isFinite(grace) || grace < 0) throw new UsageError('--grace must be a number of seconds');
      return { ok: true, value: { kid: await rotateSigningKeys(db, grace), previousKeysRetireInSeconds: grace } };
    }
    case 'keys list':
      return { ok: true, value: { keys: await listSigningKeys(db) } };
    case 'keys retire': {
      const kid = need('kid');
      return (await retireSigningKey(db, kid)) ? { ok: true, value: { retired: kid } } : { ok: false, message: `Unknown or already retired key: ${kid}` };
    }
    case 'billing claim-id-system': {
      const tenant = need('tenant');
      const system = optional('system');
      if (system !== undefined && values.reset) throw new UsageError('give --system or --reset, not both');
      if (system !== undefined && !/^[a-z][a-z0-9+.-]*:\S+$/i.test(system)) throw new UsageError('--system must be an absolute URI');
      if (!(await tenantExists(db, tenant))) return { ok: false, message: `Unknown tenant: ${tenant}` };
      if (system !== undefined || values.reset) await setClaimIdSystem(db, tenant, system);
      return { ok: true, value: { tenant, claimIdSystem: await claimIdSystem(db, tenant) } };
    }
    case 'remittance import':
      return importRemittanceFile(db, need('file'), need('tenant'), progress);
    case 'reindex':
      return runReindex(db, values, (message) => new UsageError(message), progress);
    default: {
      const sources = command.startsWith('sources ') ? await runSourceCommand(db, settings, command.slice(8), values, need) : undefined;
      if (sources) return sources;
      const ops = await runOpsCommand(db, command, values, need, (message) => new UsageError(message));
      if (ops) return ops;
      throw new UsageError(`unknown command: ${command || '(none)'}`);
    }
  }
}
