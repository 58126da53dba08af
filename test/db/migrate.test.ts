import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

let t: TestApp;
let dir: string;
beforeAll(async () => {
  t = await startTestApp();
  dir = mkdtempSync(join(tmpdir(), 'fb-migrations-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await t.close();
});

const tableExists = async (name: string): Promise<boolean> =>
  (await t.db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [name]))[0].t !== null;
const recorded = async (): Promise<string[]> =>
  (await t.db.query<{ name: string }>("SELECT name FROM schema_migration WHERE name LIKE '9%' ORDER BY name")).map((r) => r.name);

describe('migrate', () => {
  it('applies the pending migrations together: one that fails leaves none of them applied', async () => {
    writeFileSync(join(dir, '901_probe.sql'), 'CREATE TABLE migrate_probe (id int PRIMARY KEY);\nINSERT INTO migrate_probe VALUES (1);\n');
    writeFileSync(join(dir, '902_broken.sql'), 'CREATE TABLE migrate_probe_two (id int REFERENCES no_such_table (id));\n');
    await expect(migrate(t.db, dir)).rejects.toThrow(/no_such_table/);
    expect(await tableExists('migrate_probe')).toBe(false);
    expect(await recorded()).toEqual([]);

    writeFileSync(join(dir, '902_broken.sql'), 'CREATE TABLE migrate_probe_two (id int REFERENCES migrate_probe (id));\n');
    expect(await migrate(t.db, dir)).toEqual(['901_probe.sql', '902_broken.sql']);
    expect(await recorded()).toEqual(['901_probe.sql', '902_broken.sql']);
    expect(await migrate(t.db, dir)).toEqual([]);
  });
});
