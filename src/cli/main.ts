#!/usr/bin/env node
import { authSettings } from '../auth/index.ts';
import { loadConfig } from '../config.ts';
import { DataDirectoryInUseError, migrate, openDatabase } from '../db/index.ts';
import type { Database } from '../db/index.ts';
import { USAGE, runCommand } from './commands.ts';

/**
 * `fhir-billing` (package.json `bin`; `npx fhir-billing` in a checkout): the operator's command
 * line. It opens the database the server's environment names (DATABASE_URL / DATABASE_SCHEMA, or
 * the embedded database in DATA_DIR, which has one user at a time: while a server holds it, the
 * command is refused and the server's admin API does the same), applies pending migrations and
 * runs one command (commands.ts).
 */
async function main(args: string[]): Promise<number> {
  if (args.length === 0 || args[0] === 'help' || args.includes('--help') || args.includes('-h')) {
    (args.length === 0 ? process.stderr : process.stdout).write(USAGE);
    return args.length === 0 ? 2 : 0;
  }
  const config = loadConfig();
  let db: Database;
  try {
    db = await openDatabase({ databaseUrl: config.databaseUrl, schema: config.databaseSchema, dataDir: config.dataDir, poolSize: 2 });
  } catch (err) {
    if (!(err instanceof DataDirectoryInUseError)) throw err;
    const hint = 'Stop the server first, or use its admin API while it runs (/admin/tenants, /admin/clients: see README).';
    process.stderr.write(`${JSON.stringify({ error: `${err.message} ${hint}` })}\n`);
    return 1;
  }
  try {
    if (args[0] !== 'migrate') await migrate(db);
    const settings = authSettings({
      tokenTtlSeconds: config.auth.tokenTtlSeconds,
      hashCost: config.auth.hashCost,
      sealingKey: config.auth.sealingKey,
      allowPrivateNetworks: config.outboundAllowPrivateNetworks,
    });
    // Progress of a long command (remittance import): one line rewritten on a terminal, else lines.
    let shown = '';
    const progress = (line: string, final = false): void => {
      if (process.stderr.isTTY) process.stderr.write(`\r${line}${final ? '\n' : ''}`);
      else if (line !== shown && (final || /\b\d*0% /.test(line))) process.stderr.write(`${line}\n`);
      shown = line;
    };
    const output = await runCommand(db, settings, args, progress);
    process.stdout.write(output.stdout);
    process.stderr.write(output.stderr);
    return output.code;
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // The same {error} shape as a refused command: a bad setting or a missing database, not a stack trace.
    process.stderr.write(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`);
    process.exit(1);
  },
);
