import type { Server, ServerResponse } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { loadConfig } from './config.ts';
import type { Config } from './config.ts';
import { migrate, openDatabase } from './db/index.ts';
import { keepStatisticsFresh } from './db/statistics.ts';
import type { Database } from './db/index.ts';
import { createApp } from './app.ts';
import { OAUTH_TOKEN_PATH, authSettings, bootstrapAuth } from './auth/index.ts';
import { FULL_ACCESS } from './fhir/access.ts';
import { PostgresRepository } from './fhir/repository.ts';
import { createLogger } from './logger.ts';
import type { Logger } from './logger.ts';
import { loadProfiles } from './profiles/index.ts';
import { closeAgents, startDeliveryWorker, subscriptionObserver } from './subscriptions/index.ts';
import type { DeliveryWorker } from './subscriptions/index.ts';

type Role = 'all' | 'api' | 'worker';

/** How long, after SIGTERM, an idle keep-alive connection may still bring a request. */
const DRAIN_IDLE_GRACE_MS = 1000;
const draining = new WeakSet<Server>();

/**
 * Process entry: config → database → migrations → the HTTP API and/or the delivery worker
 * (`--role=api|worker`; both by default). SIGTERM stops accepting, drains and exits 0.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.databaseUrl) keepEmbeddedDatabaseCompact();
  const logger = createLogger(config.logLevel);
  const role = parseRole(process.argv);
  const db = await openDatabase({
    databaseUrl: config.databaseUrl,
    schema: config.databaseSchema,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
  });
  const applied = await migrate(db);
  logger.info({ database: db.kind, applied }, 'database ready');
  if (process.argv.includes('--migrate-only')) {
    await db.close();
    return;
  }
  const firstClient = await bootstrapAuth(db, authSettings({ hashCost: config.auth.hashCost }), config.auth.bootstrap);
  if (firstClient) {
    // Shown once, on the terminal only: the database keeps just its hash.
    process.stderr.write(
      `\nNo API client existed, so one was created. Its secret is shown only now:\n` +
        `  clientId:     ${firstClient.clientId}\n  clientSecret: ${firstClient.clientSecret}\n` +
        `Get a token: curl -s -X POST localhost:${config.port}/api/token -H 'Content-Type: application/json' ` +
        `-d '{"clientId": "${firstClient.clientId}", "clientSecret": "<clientSecret>"}'\n\n`,
    );
  }
  logger.info({ tenant: config.auth.bootstrap.tenant, clientId: config.auth.bootstrap.clientId }, 'bootstrap tenant ready');

  const statistics = await keepStatisticsFresh(db, {
    intervalMs: config.analyzeIntervalMs,
    onError: (err) => logger.warn({ err }, 'refreshing planner statistics failed'),
  });
  const server = role === 'worker' ? undefined : startApi(config, db, logger);
  const worker = role === 'api' ? undefined : await startWorker(config, db, logger);

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, role }, 'stopping: no new work, draining what is in flight');
    setTimeout(() => {
      logger.warn('drain timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    await Promise.all([
      server &&
        new Promise<void>((resolve) => {
          // A request already on its way over an idle keep-alive connection must be answered, not
          // reset: from now on answers carry `Connection: close` (so each connection ends after its
          // next answer), and only after a moment does close() stop listening and drop the idle rest.
          draining.add(server);
          setTimeout(() => server.close(() => resolve()), DRAIN_IDLE_GRACE_MS);
        }),
      worker?.stop(),
    ]);
    closeAgents();
    await statistics.stop();
    await db.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/**
 * The embedded database is PostgreSQL compiled to WebAssembly. V8 compiles it with its baseline
 * compiler (Liftoff) and later recompiles hot functions with TurboFan; one of them (about 100 KB of
 * wasm) needs about 600 MB of compiler memory for a second, which is what killed a 512 MiB
 * container at boot (or at the first busy minute). Baseline code only: a bounded process. Flags
 * are process-wide (the database's worker thread too) and must be set before the module compiles.
 */
function keepEmbeddedDatabaseCompact(): void {
  setFlagsFromString('--no-wasm-tier-up');
  setFlagsFromString('--no-wasm-dynamic-tiering');
}

function startApi(config: Config, db: Database, logger: Logger): Server {
  const { issuer, tokenTtlSeconds, hashCost } = config.auth;
  const app = createApp({
    db,
    logger,
    baseUrl: config.baseUrl,
    allowPrivateNetworks: config.outboundAllowPrivateNetworks,
    trustedProxies: config.trustedProxies,
    // Assertions name the token endpoint as configured, never as a request's Host header says.
    auth: { issuer, tokenTtlSeconds, hashCost, tokenEndpointUrl: `${config.baseUrl ?? `http://localhost:${config.port}`}${OAUTH_TOKEN_PATH}` },
  });
  const server = app.listen(config.port, () => logger.info({ port: config.port }, 'fhir-billing listening'));
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (draining.has(server)) res.setHeader('Connection', 'close');
  });
  return server;
}

async function startWorker(config: Config, db: Database, logger: Logger): Promise<DeliveryWorker> {
  loadProfiles();
  const fhirBaseUrl = `${config.baseUrl ?? `http://localhost:${config.port}`}/fhir`;
  const observer = subscriptionObserver({ allowPrivateNetworks: config.outboundAllowPrivateNetworks });
  return startDeliveryWorker({
    db,
    logger: logger.child({ component: 'delivery' }),
    repositoryFor: (tenantId) => new PostgresRepository(db, { tenantId, baseUrl: fhirBaseUrl, access: FULL_ACCESS }, { observer }),
    fhirBaseUrl,
    retrySchedule: config.delivery.retrySchedule,
    allowPrivateNetworks: config.outboundAllowPrivateNetworks,
    concurrency: config.delivery.concurrency,
    pollIntervalMs: config.delivery.pollIntervalMs,
  });
}

function parseRole(argv: string[]): Role {
  const arg = argv.find((a) => a.startsWith('--role='));
  const role = arg?.slice('--role='.length) ?? 'all';
  if (role !== 'all' && role !== 'api' && role !== 'worker') throw new Error(`Unknown --role=${role} (api, worker or all)`);
  return role;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
