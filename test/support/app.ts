import { randomBytes } from 'node:crypto';
import type { Express } from 'express';
import { createApp } from '../../src/app.ts';
import { migrate, openDatabase } from '../../src/db/index.ts';
import type { Database } from '../../src/db/index.ts';
import { createLogger } from '../../src/logger.ts';

export interface TestApp {
  app: Express;
  db: Database;
  close: () => Promise<void>;
}

/**
 * A real app on a real database: PostgreSQL in a schema of its own when DATABASE_URL is set (as
 * .ci/run does), otherwise a fresh in-memory embedded PostgreSQL. Never a mock.
 */
export async function startTestApp(): Promise<TestApp> {
  const databaseUrl = process.env.DATABASE_URL;
  const db = await openDatabase({
    databaseUrl,
    schema: databaseUrl ? `test_${randomBytes(6).toString('hex')}` : undefined,
    dataDir: 'memory://',
    poolSize: 10,
  });
  await migrate(db);
  const app = createApp({ db, logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent') });
  return { app, db, close: () => db.close() };
}
