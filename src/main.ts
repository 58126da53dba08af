import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { loadConfig } from './config.ts';
import type { Config } from './config.ts';
import { migrate, openDatabase } from './db/index.ts';
import { keepStatisticsFresh } from './db/statistics.ts';
import type { Database } from './db/index.ts';
import { createApp } from './app.ts';
import { OAUTH_TOKEN_PATH, authSettings, bootstrapAuth } from './auth/index.ts';
import { openDeliveryDatabase, serverRepositories, startDelivery, startDeliveryThread } from './delivery.ts';
import { createLogger } from './logger.ts';
import type { Logger } from './logger.ts';
import { closeAgents, moveSubscriptionStatus } from './subscriptions/index.ts';

type Role = 'all' | 'api' | 'worker';

const draining = new WeakSet<Server>();

/** Set once the configuration is read; until then start-up failures log at the default level. */
let logger: Logger = createLogger('info');
/** Closed (so that the embedded database's lock is released cleanly) when start-up fails. */
let openedDb: Database | undefined;

/**
 * Process entry: config → database → migrations → the HTTP API and/or the delivery worker
 * (`--role=api|worker`; both by default). SIGTERM stops accepting, drains and exits 0. A start-up
 * failure (bad setting, database missing or in use, port taken) is one JSON line and exit 1.
 */
async function main(): Promise<void> {
  const config = startupStep('configuration', loadConfig);
  if (!config.databaseUrl) keepEmbeddedDatabaseCompact();
  logger = createLogger(config.logLevel);
  const role = startupStep('configuration', () => parseRole(process.argv));
  logger.info({ role, ...startupSettings(config) }, 'starting');
  const db = await startupStep('database', () =>
    openDatabase({
      databaseUrl: config.databaseUrl,
      schema: config.databaseSchema,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
      // Nothing can be written or read any more, and nothing half-written is acknowledged (each
      // transaction commits inside the thread): exit so that a supervisor starts us afresh.
      onEmbeddedLost: (err) => {
        logger.error({ err }, 'the embedded database stopped; exiting');
        process.exit(1);
      },
    }),
  );
  openedDb = db;
  const applied = await startupStep('migrations', () => migrate(db));
  logger.info({ database: db.kind, applied }, 'database ready');
  if (process.argv.includes('--migrate-only')) {
    await db.close();
    return;
  }
  const firstClient = await startupStep('bootstrap', () =>
    bootstrapAuth(db, authSettings({ hashCost: config.auth.hashCost }), config.auth.bootstrap),
  );
  if (firstClient) {
    // Shown once, on the terminal only: the database keeps just its hash.
    process.stderr.write(
      `\nNo API client existed, so one was created. Its secret is shown only now:\n` +
        `  clientId:     ${firstClient.clientId}\n  clientSecret: ${firstClient.clientSecret}\n` +
        `Get a token: curl -s -X POST localhost:${config.port}/api/token -H 'Content-Type: application/json' ` +
        `-d '{"clientId": "${firstClient.clientId}", "clientSecret": "<clientSecret>"}'\n` +
        (config.consoleEnabled ? `Or sign in to the console with them: http://localhost:${config.port}/console/\n\n` : '\n'),
    );
  }
  logger.info({ tenant: config.auth.bootstrap.tenant, clientId: config.auth.bootstrap.clientId }, 'bootstrap tenant ready');

  const statistics = await keepStatisticsFresh(db, {
    intervalMs: config.analyzeIntervalMs,
    onError: (err) => logger.warn({ err }, 'refreshing planner statistics failed'),
  });
  // On PostgreSQL, a server that is both API and worker delivers from a thread of its own, with
  // connections of its own, so that deliveries never wait behind requests (delivery.ts); a worker
  // alone delivers on a pool of its own. The embedded database has one connection, in this thread.
  const deliveryDb = role === 'worker' && config.databaseUrl ? await startupStep('database', () => openDeliveryDatabase(config)) : db;
  const worker =
    role === 'api'
      ? undefined
      : await startupStep('worker', () =>
          role === 'all' && config.databaseUrl
            ? startDeliveryThread(moveSubscriptionStatus(serverRepositories(config, db)), (err) => {
                logger.error({ err }, 'the delivery thread stopped; exiting');
                process.exit(1);
              })
            : startDelivery(config, deliveryDb, logger),
        );
  // Listening last: once /healthz answers, the whole server has started (and SIGTERM is handled).
  const server =
    role === 'worker'
      ? undefined
      : await startupStep('listen', () => startApi(config, db, logger)).catch(async (err: unknown) => {
          await worker?.stop();
          throw err;
        });

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
      server && drain(server, config.shutdownIdleGraceMs),
      worker?.stop(),
    ]);
    closeAgents();
    await statistics.stop();
    if (deliveryDb !== db) await deliveryDb.close();
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
 * container at boot (or at the first busy minute). Baseline code only: a bounded process. And
 * V8's heuristics for size rather than speed (about 30 MB less idle RSS), since the embedded
 * default is the small deployment. Flags are process-wide (the database's worker thread too) and
 * must be set before the module compiles.
 */
function keepEmbeddedDatabaseCompact(): void {
  setFlagsFromString('--no-wasm-tier-up');
  setFlagsFromString('--no-wasm-dynamic-tiering');
  setFlagsFromString('--optimize-for-size');
}

/**
 * A request already on its way over an idle keep-alive connection must be answered, not reset:
 * from now on answers carry `Connection: close` (so each connection ends after its next answer),
 * each idle connection gets the whole grace to bring one (even if its keep-alive was running out),
 * and only then does close() stop listening and drop the idle rest; at once when no connection is
 * left, as nothing can be on its way then. Resolves when every connection has ended.
 */
function drain(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    draining.add(server);
    const { open, busy } = connectionsOf.get(server)!;
    for (const socket of open) if (!busy.has(socket)) socket.setTimeout(graceMs);
    let closing = false;
    const close = (): void => {
      if (closing) return;
      closing = true;
      clearTimeout(timer);
      server.close(() => resolve());
    };
    const timer = setTimeout(close, graceMs);
    if (open.size === 0) close();
    else server.once(ALL_CONNECTIONS_ENDED, close);
  });
}

/** Per server: its open connections, and those with a request in flight (the rest are idle). */
const connectionsOf = new WeakMap<Server, { open: Set<Socket>; busy: Set<Socket> }>();
const ALL_CONNECTIONS_ENDED = 'fhir-billing:all-connections-ended';

function trackConnections(server: Server): void {
  const open = new Set<Socket>();
  const busy = new Set<Socket>();
  connectionsOf.set(server, { open, busy });
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      busy.delete(socket);
      if (open.size === 0) server.emit(ALL_CONNECTIONS_ENDED);
    });
  });
  server.on('request', (req, res: ServerResponse) => {
    busy.add(req.socket);
    res.once('close', () => busy.delete(req.socket));
  });
}

/** Resolves once the port is bound; a port in use (or not ours to bind) rejects instead of serving nothing. */
function startApi(config: Config, db: Database, logger: Logger): Promise<Server> {
  const { issuer, tokenTtlSeconds, hashCost, sealingKey } = config.auth;
  const app = createApp({
    db,
    logger,
    baseUrl: config.baseUrl,
    allowPrivateNetworks: config.outboundAllowPrivateNetworks,
    console: config.consoleEnabled,
    trustedProxies: config.trustedProxies,
    // Assertions name the token endpoint as configured, never as a request's Host header says.
    auth: { issuer, tokenTtlSeconds, hashCost, sealingKey, tokenEndpointUrl: `${config.baseUrl ?? `http://localhost:${config.port}`}${OAUTH_TOKEN_PATH}` },
  });
  return new Promise((resolve, reject) => {
    const server = app.listen(config.port);
    trackConnections(server);
    server.prependListener('request', (_req, res: ServerResponse) => {
      if (draining.has(server)) res.setHeader('Connection', 'close');
    });
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      logger.info({ port, ...(config.consoleEnabled && { console: `${config.baseUrl ?? `http://localhost:${port}`}/console/` }) }, 'fhir-billing listening');
      resolve(server);
    });
  });
}

function parseRole(argv: string[]): Role {
  const arg = argv.find((a) => a.startsWith('--role='));
  const role = arg?.slice('--role='.length) ?? 'all';
  if (role !== 'all' && role !== 'api' && role !== 'worker') throw new Error(`Unknown --role=${role} (api, worker or all)`);
  return role;
}

type Phase = 'configuration' | 'database' | 'migrations' | 'bootstrap' | 'listen' | 'worker';

/** A start-up failure and the step it happened in, so that the one line it is logged as says what to do. */
class StartupFailure extends Error {
  readonly phase: Phase;
  constructor(phase: Phase, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.phase = phase;
  }
}

function startupStep<T>(phase: Phase, step: () => T): T {
  const fail = (err: unknown): never => {
    throw err instanceof StartupFailure ? err : new StartupFailure(phase, err);
  };
  try {
    const result = step();
    return (result instanceof Promise ? result.catch(fail) : result) as T;
  } catch (err) {
    return fail(err);
  }
}

/** Fields of the failure line: the step and the error's code, never its stack. */
function describeStartupFailure(err: unknown): { phase?: Phase; code?: string } {
  const cause = err instanceof StartupFailure ? err.cause : err;
  const code = (cause as { code?: unknown } | undefined)?.code;
  return { ...(err instanceof StartupFailure && { phase: err.phase }), ...(typeof code === 'string' && { code }) };
}

function startupFailureMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (!(err instanceof StartupFailure)) return message;
  const { code, port } = (err.cause ?? {}) as { code?: string; port?: number };
  switch (err.phase) {
    case 'listen':
      if (code === 'EADDRINUSE') return `port ${port} is already in use by another process: stop it, or set PORT to a free port`;
      if (code === 'EACCES') return `not allowed to listen on port ${port}: set PORT to a port above 1023`;
      return `cannot listen: ${message}`;
    case 'database':
      if (code === 'DATA_DIR_IN_USE') return `${message} Stop the other server first, or set DATA_DIR to another directory.`;
      if (isConnectionFailure(code)) return `cannot connect to the database: ${message}`;
      return `cannot open the database: ${message}`;
    case 'migrations':
      // pg connects at its first statement, so a database that is missing or unreachable may show here.
      if (isConnectionFailure(code)) return `cannot connect to the database: ${message}`;
      return `cannot migrate the database: ${message}`;
    default:
      return message;
  }
}

const SOCKET_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** SQLSTATE classes 08 (connection), 28 (authorization), 3D (no such database), or a socket error. */
function isConnectionFailure(code: string | undefined): boolean {
  return code !== undefined && (/^(08|28|3D)[0-9A-Z]{3}$/.test(code) || SOCKET_FAILURES.has(code));
}

/** What a reader of the start-up log needs to know which server this is; never a secret. */
function startupSettings(config: Config): Record<string, unknown> {
  const database = config.databaseUrl
    ? { kind: 'postgres', ...postgresTarget(config.databaseUrl), ...(config.databaseSchema && { schema: config.databaseSchema }) }
    : { kind: 'embedded', dataDir: config.dataDir.includes('://') ? config.dataDir : resolve(config.dataDir) };
  return {
    port: config.port,
    database,
    publicBaseUrl: config.baseUrl ? withoutCredentials(config.baseUrl) : '(unset: taken from each request)',
    allowPrivateNetworks: config.outboundAllowPrivateNetworks,
  };
}

/** Host, port and database name of a connection string: its user name and password stay out of logs. */
function postgresTarget(connectionString: string): { host?: string; port?: number; database?: string } {
  try {
    const url = new URL(connectionString);
    return {
      host: url.hostname || url.searchParams.get('host') || 'localhost',
      port: Number(url.port || 5432),
      database: decodeURIComponent(url.pathname.slice(1)) || undefined,
    };
  } catch {
    return {};
  }
}

function withoutCredentials(value: string): string {
  const url = new URL(value);
  url.username = '';
  url.password = '';
  return url.href.replace(/\/$/, '');
}

main().catch(async (err: unknown) => {
  process.exitCode = 1;
  // Level error, not fatal: pino writes a fatal line synchronously, overtaking a line still being
  // written (the 'starting' line, just before). For the same reason this ends by running out of
  // work rather than by process.exit(); whatever stays open is cut short after a moment.
  logger.error(describeStartupFailure(err), `start-up failed: ${startupFailureMessage(err)}`);
  setTimeout(() => process.exit(1), 3000).unref();
  await openedDb?.close().catch(() => {});
});
