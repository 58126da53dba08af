import { randomBytes } from 'node:crypto';
import type { Express } from 'express';
import { createApp } from '../../src/app.ts';
import { authSettings, ensureBootstrapClient, issueAccessToken, parseScopes } from '../../src/auth/index.ts';
import type { AuthSettings } from '../../src/auth/index.ts';
import { insertClient, insertTenant } from '../../src/auth/store.ts';
import { migrate, openDatabase } from '../../src/db/index.ts';
import type { Database } from '../../src/db/index.ts';
import { createLogger } from '../../src/logger.ts';

export interface TestApp {
  app: Express;
  db: Database;
  close: () => Promise<void>;
  /** The settings the app runs with (issuer, token lifetime, hashing cost, failure limits). */
  auth: AuthSettings;
  /** The bootstrap client (tenant `default`, every scope plus admin), as BOOTSTRAP_CLIENT_* make it. */
  bootstrap: { clientId: string; clientSecret: string };
  /**
   * An access token for a client of `tenant` (created, with the tenant, on first use) holding
   * `scopes` (default: every FHIR interaction on every type). Issued directly, as /oauth2/token would.
   */
  token: (scopes?: string, tenant?: string) => Promise<string>;
}

/** Cheaper scrypt than production's 2^15 so the suite stays fast; hashes carry their own cost. */
const TEST_HASH_COST = 12;

/**
 * A real app on a real database: PostgreSQL in a schema of its own when DATABASE_URL is set (as
 * .ci/run does), otherwise a fresh in-memory embedded PostgreSQL. Never a mock.
 */
export async function startTestApp(options: { baseUrl?: string; allowPrivateNetworks?: boolean; auth?: Partial<AuthSettings>; trustedProxies?: string[] } = {}): Promise<TestApp> {
  const databaseUrl = process.env.DATABASE_URL;
  const db = await openDatabase({
    databaseUrl,
    schema: databaseUrl ? `test_${randomBytes(6).toString('hex')}` : undefined,
    dataDir: 'memory://',
    poolSize: 10,
  });
  await migrate(db);
  const auth = authSettings({ hashCost: TEST_HASH_COST, allowPrivateNetworks: options.allowPrivateNetworks ?? false, ...options.auth });
  const app = createApp({ db, logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'), ...options, auth });
  const bootstrap = { clientId: 'bootstrap', clientSecret: randomBytes(24).toString('base64url') };
  await ensureBootstrapClient(db, auth, { tenant: 'default', ...bootstrap });

  const clients = new Map<string, string>();
  const token = async (scopes = 'system/*.cruds', tenant = 'default'): Promise<string> => {
    let clientId = clients.get(tenant);
    if (!clientId) {
      await insertTenant(db, tenant, `Test tenant ${tenant}`);
      clientId = `test-${tenant}-${randomBytes(4).toString('hex')}`;
      const all = ['system/*.cruds', 'webhook', 'admin'];
      await insertClient(db, { id: clientId, tenantId: tenant, name: 'test client', secretHash: 'none', scopes: all, jwks: null, jwksUrl: null });
      clients.set(tenant, clientId);
    }
    const parsed = parseScopes(scopes);
    if ('invalid' in parsed) throw new Error(`invalid test scopes: ${parsed.invalid.join(' ')}`);
    const issued = await issueAccessToken(db, auth, { clientId, tenantId: tenant, scopes: parsed.scopes });
    return issued.accessToken;
  };
  return { app, db, close: () => db.close(), auth, bootstrap, token };
}
