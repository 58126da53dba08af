import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
/** Any constant: serializes concurrent migrators (several processes starting at once). */
const MIGRATION_LOCK_KEY = 727_001;

/**
 * Applies every migrations/NNN_name.sql not yet applied, in order, all in one transaction: the
 * migrations a release brings land together or not at all, so a failed one leaves the schema as
 * the previous release left it (the code of neither release expects a schema halfway between),
 * and the transaction's advisory lock makes a concurrent migrator wait for the whole run and
 * then find nothing left to do. `dir` is for tests.
 */
export async function migrate(db: Database, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  const applied: string[] = [];
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migration (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await tx.query<{ name: string }>('SELECT name FROM schema_migration')).map((r) => r.name));
    for (const file of files) {
      if (done.has(file)) continue;
      // A migration file may hold several statements, so it runs as a simple (unparameterised) query.
      for (const statement of splitStatements(readFileSync(join(dir, file), 'utf8'))) {
        await tx.query(statement);
      }
      await tx.query('INSERT INTO schema_migration (name) VALUES ($1)', [file]);
      applied.push(file);
    }
  });
  return applied;
}

/**
 * Splits on semicolons at line ends; our migrations keep to that. A function body, quoted as
 * $$ ... $$, has such semicolons inside: pieces are joined again until its quotes are closed.
 */
function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let open = '';
  for (const piece of sql.split(/;\s*$/m)) {
    open = open ? `${open};${piece}` : piece;
    if ((open.match(/\$\$/g) ?? []).length % 2 === 1) continue;
    statements.push(open);
    open = '';
  }
  if (open) statements.push(open);
  return statements.map((s) => s.replace(/^\s*--.*$/gm, '').trim()).filter((s) => s.length > 0);
}
