import type { Server } from 'node:http';
import { loadConfig } from './config.ts';
import { migrate, openDatabase } from './db/index.ts';
import { createApp } from './app.ts';
import { createLogger } from './logger.ts';

/** Process entry: config → database → migrations → HTTP server; SIGTERM drains and exits. */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
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

  const app = createApp({ db, logger, baseUrl: config.baseUrl });
  const server: Server = app.listen(config.port, () => {
    logger.info({ port: config.port }, 'fhir-billing listening');
  });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: no new connections, draining in-flight requests');
    const deadline = setTimeout(() => {
      logger.warn('drain timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    server.close(async () => {
      await db.close();
      logger.info('stopped');
      process.exit(0);
    });
    // Keep-alive connections with no request in flight would hold close() open.
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
