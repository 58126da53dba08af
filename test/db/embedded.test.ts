import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Decimal } from 'decimal.js';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { embeddedTemplate, hasCluster } from '../../src/db/embedded-template.ts';
import type { Database } from '../../src/db/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

/**
 * The embedded database behind the `Database` interface, run in its own thread. The first test runs
 * on whichever database the suite runs on; the rest are the embedded database's own contract.
 */
let t: TestApp;
let db: Database;
beforeAll(async () => {
  t = await startTestApp();
  db = await createEmbeddedDatabase('memory://');
  await db.query('CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL, amount numeric(12,2))');
});
afterAll(async () => {
  await t.close();
  await db.close();
});

async function expectRejection(work: Promise<unknown>): Promise<Record<string, unknown> & { message: string }> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e as Record<string, unknown> & { message: string },
  );
  expect(err, 'expected the statement to fail').toBeInstanceOf(Error);
  return err!;
}

describe('the database thread', () => {
  it('keeps /healthz answering while a slow statement runs', async () => {
    const order: string[] = [];
    const slow = t.db.query('SELECT pg_sleep(3)').then(() => order.push('slow statement finished'));
    const health = await request(t.app).get('/healthz');
    order.push('healthz answered');
    await slow;
    expect(health.status).toBe(200);
    expect(order).toEqual(['healthz answered', 'slow statement finished']);
  });

  it('round-trips parameters and rows exactly as PGlite on this thread does', async () => {
    const sql = `SELECT 12.50::numeric AS numeric, '2026-01-02T03:04:05.678Z'::timestamptz AS at, 9007199254740993::bigint AS big,
        12::bigint AS small_big, '{"a": [1, {"b": null}]}'::jsonb AS doc, '\\x00ff'::bytea AS bytes, ARRAY['x', 'y'] AS texts,
        $1::jsonb AS param_doc, $2::text[] AS param_texts, $3::bytea AS param_bytes, $4::timestamptz AS param_at,
        $5::numeric AS param_decimal, $6::bigint AS param_big, $7::text AS param_null, $8::boolean AS flag, $9::jsonb AS param_list`;
    const params = () => [
      { n: 1n, nested: { list: ['€', 2] } },
      ['a,b', 'c"d'],
      Buffer.from([1, 2, 3]),
      new Date('2020-02-29T12:00:00Z'),
      new Decimal('1234567890.125'),
      12n,
      null,
      true,
      [{ amount: '1.10' }],
    ];
    const reference = await PGlite.create('memory://');
    try {
      const expected = (await reference.query(sql, params())).rows;
      const rows = await db.query(sql, params());
      expect(rows).toStrictEqual(expected);
      expect(rows[0]).toMatchObject({ numeric: '12.50', big: 9007199254740993n, param_decimal: '1234567890.125', param_doc: { n: '1' } });
      expect((rows[0] as { at: unknown }).at).toBeInstanceOf(Date);
    } finally {
      await reference.close();
    }
   }, 120_000); // a second PGlite to compare with: slow to start on a loaded machine

  it('keeps an error SQLSTATE code, message and fields', async () => {
    await db.query('INSERT INTO item VALUES (1, $1, $2)', ['first', '9.99']);
    const duplicate = await expectRejection(db.query('INSERT INTO item VALUES (1, $1, $2)', ['again', '1']));
    expect(duplicate).toMatchObject({ code: '23505', constraint: 'item_pkey', message: 'duplicate key value violates unique constraint "item_pkey"' });
    expect(await expectRejection(db.query('SELECT $1::int', ['not a number']))).toMatchObject({ code: '22P02', message: 'invalid input syntax for type integer: "not a number"' });
    expect(await expectRejection(db.query('INSERT INTO item VALUES (2, $1, $2)', ['huge', '1e20']))).toMatchObject({ code: '22003' });
    expect(await expectRejection(db.query('SELECT * FROM no_such_table'))).toMatchObject({ code: '42P01' });
    // A value PGlite refuses before PostgreSQL sees it is an error too, not a crash of the thread.
    expect((await expectRejection(db.query('SELECT $1::bytea', ['not bytes']))).message).toMatch(/bytea/);
    expect(await db.query('SELECT label FROM item')).toEqual([{ label: 'first' }]);
  });

  it('runs one transaction at a time: no statement from elsewhere lands inside it', async () => {
    let release!: () => void;
    const paused = new Promise<void>((r) => (release = r));
    const tx = db.transaction(async (q) => {
      await q.query('INSERT INTO item VALUES (10, $1, NULL)', ['inside']);
      await paused;
      throw new Error('roll it back');
    });
    // Issued while the transaction is open: it must wait, and so survive the ROLLBACK.
    const outside = db.query('INSERT INTO item VALUES (11, $1, NULL) RETURNING id', ['outside']);
    await new Promise((r) => setTimeout(r, 50));
    release();
    await expect(tx).rejects.toThrow('roll it back');
    expect(await outside).toEqual([{ id: 11 }]);
    expect(await db.query('SELECT id FROM item WHERE id >= 10 ORDER BY id')).toEqual([{ id: 11 }]);
  });

  it('forwards NOTIFY to listeners until they stop listening', async () => {
    const heard: string[] = [];
    const stop = await db.listen('item_events', (payload) => heard.push(payload));
    await db.query("SELECT pg_notify('item_events', 'one')");
    await db.transaction(async (q) => {
      await q.query("SELECT pg_notify('item_events', 'two')");
    });
    await db.transaction(async (q) => {
      await q.query("SELECT pg_notify('item_events', 'rolled back')");
      throw new Error('no');
    }).catch(() => {});
    await stop();
    await db.query("SELECT pg_notify('item_events', 'after stop')");
    await db.query('SELECT 1');
    expect(heard).toEqual(['one', 'two']);
  });

  it('tells its owner once when the thread dies after start-up, and fails every statement from then on', async () => {
    const lost: Error[] = [];
    const crashing = await createEmbeddedDatabase('memory://', {
      threadUrl: new URL('../fixtures/crashing-embedded-worker.js', import.meta.url),
      onLost: (err) => lost.push(err),
    });
    expect(await crashing.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    expect(lost).toEqual([]);
    expect((await expectRejection(crashing.query("SELECT 'crash'"))).message).toMatch(/stopped \(exit code 7\)/);
    expect((await expectRejection(crashing.query('SELECT 1'))).message).toMatch(/exit code 7/);
    expect(lost.map((e) => e.message)).toEqual(['The embedded database thread stopped (exit code 7)']);
    await crashing.close().catch(() => {});
    expect(lost).toHaveLength(1);
  });

  it('does not call a closed database lost', async () => {
    const lost: Error[] = [];
    const closing = await createEmbeddedDatabase('memory://', { onLost: (err) => lost.push(err) });
    await closing.query('SELECT 1');
    await closing.close();
    expect(lost).toEqual([]);
  });

  it('refuses statements once closed', async () => {
    const closing = await createEmbeddedDatabase('memory://');
    expect(await closing.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await closing.close();
    expect((await expectRejection(closing.query('SELECT 1'))).message).toMatch(/closed/);
   }, 120_000);
});

describe('the template a new embedded database starts from (made by npm ci)', () => {
  // initdb gives every cluster a random system identifier; a copy of the template keeps the template's.
  const systemIdentifier = async (dataDir: string): Promise<string> => {
    const opened = await createEmbeddedDatabase(dataDir);
    try {
      const [row] = await opened.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
      return row.id;
    } finally {
      await opened.close();
    }
  };

  it('is what npm ci left beside the packages', () => {
    const template = embeddedTemplate();
    expect(template && hasCluster(template.dir)).toBe(true);
    expect(template && existsSync(template.tarball)).toBe(true);
  });

  it('a new data directory, a directory whose copy was cut short, and memory:// are all the template, not a fresh initdb', async () => {
    const root = mkdtempSync(join(tmpdir(), 'fb-template-'));
    try {
      const fresh = await systemIdentifier(join(root, 'new'));
      // A copy cut short: files but no PG_VERSION (the marker goes last), so it is copied again.
      mkdirSync(join(root, 'cut-short', 'base'), { recursive: true });
      writeFileSync(join(root, 'cut-short', 'base', 'junk'), 'x');
      const cutShort = await systemIdentifier(join(root, 'cut-short'));
      const inMemory = await systemIdentifier('memory://');
      expect(new Set([fresh, cutShort, inMemory]).size).toBe(1);
      // And it is a database that works, twice: the copy is a cluster PGlite opens again.
      const again = await createEmbeddedDatabase(join(root, 'new'));
      await again.query('CREATE TABLE kept (id int)');
      await again.close();
      expect(await systemIdentifier(join(root, 'new'))).toBe(fresh);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
