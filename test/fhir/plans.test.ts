import { parseSearchRequest } from '@medplum/core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileSearch, pageStatement } from '../../src/fhir/search/query.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { WEBHOOK, serverRepo } from '../support/billing.ts';
import { CLAIM_ID_SYSTEM, claim } from '../support/fixtures.ts';

// Search cost follows the matches, not the table, on tables nobody has analysed: the embedded
// database has no autovacuum, and PostgreSQL may run without it. Asserted on the plan (which index
// drives, how many rows each step reads), never on time.

const CLAIMS = 3_000;
let t: TestApp;
let token: string;

beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
  const repo = serverRepo(t);
  // One transaction through the repository: the same rows as the API writes, at a fraction of the cost.
  await repo.withTransaction(async (tx) => {
    for (let n = 0; n < CLAIMS; n++) await tx.createResource(claim(`Patient/p${n % 50}`, `bill-${n}`));
  });
}, 120_000);
afterAll(() => t.close());

const auth = { type: 'bearer' as const };

describe(`with ${CLAIMS} Claims and no statistics`, () => {
  it('the tables have never been analysed', async () => {
    const stats = await t.db.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM pg_stats WHERE schemaname = current_schema() AND tablename IN ('resource', 'search_token', 'search_reference')`,
    );
    expect(Number(stats[0].n)).toBe(0);
  });

  it('an identifier search with no match, and one with a match, answer', async () => {
    const none = await request(t.app).get(`/fhir/Claim?identifier=${CLAIM_ID_SYSTEM}|no-such-bill`).auth(token, auth);
    expect(none.status).toBe(200);
    expect(none.body.entry).toEqual([]);
    const one = await request(t.app).get(`/fhir/Claim?identifier=${CLAIM_ID_SYSTEM}|bill-1234&status=active`).auth(token, auth);
    expect(one.status).toBe(200);
    expect(one.body.entry.map((e: any) => e.resource.identifier[0].value)).toEqual(['bill-1234']);
  });

  it('a payment for an unknown bill is a 404 in the sender shape', async () => {
    const res = await request(t.app).post(WEBHOOK).auth(token, auth).send({ billId: 'no-such-bill', paymentAmount: 5, paymentTraceId: 'pi_plans' });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'Claim not found for billId: no-such-bill' });
  });

  it('a conditional create finds the existing Claim, and creates when none matches', async () => {
    const existing = await request(t.app)
      .post('/fhir/Claim')
      .auth(token, auth)
      .set('If-None-Exist', `identifier=${CLAIM_ID_SYSTEM}|bill-77`)
      .send(claim('Patient/p1', 'bill-77'));
    expect(existing.status).toBe(200);
    expect(existing.body.identifier[0].value).toBe('bill-77');
    const created = await request(t.app)
      .post('/fhir/Claim')
      .auth(token, auth)
      .set('If-None-Exist', `identifier=${CLAIM_ID_SYSTEM}|bill-new`)
      .send(claim('Patient/p1', 'bill-new'));
    expect(created.status).toBe(201);
  });

  describe.each([
    ['identifier, no match', `Claim?identifier=${CLAIM_ID_SYSTEM}|no-such-bill`, 'search_token_value_idx', 0],
    ['identifier, one match', `Claim?identifier=${CLAIM_ID_SYSTEM}|bill-17`, 'search_token_value_idx', 1],
    ['status written first, identifier drives', `Claim?status=active&identifier=bill-18`, 'search_token_value_idx', 1],
    ['reference', 'Claim?patient=Patient/p7', 'search_reference_target_idx', CLAIMS / 50],
    ['_id', 'Claim?_id=nope,nada', undefined, 0],
    ['several identifiers (OR)', 'Claim?identifier=bill-5,bill-6,bill-7', 'search_token_value_idx', 3],
    ['several references (OR) and a status, as billing asks', 'ClaimResponse?request=Claim/a,Claim/b&status=active', 'search_reference_target_idx', 0],
    ['reference, sorted by a date', 'Claim?patient=Patient/p7&_sort=-created', 'search_reference_target_idx', CLAIMS / 50],
    ['chained (patient._id), then the reference by target id', 'Claim?patient._id=p7', undefined, CLAIMS / 50],
    ['chained and a status', 'Claim?status=active&patient._id=p9', undefined, CLAIMS / 50],
    ['_has: a Claim by identifier, then its references by resource id', 'Patient?_has:Claim:patient:identifier=bill-5', 'search_token_value_idx', 1],
  ])('plan of %s', (_what, query, drivingIndex, matches) => {
    it('reads through the value index and the primary key only, rows in proportion to the matches', async () => {
      const plan = await explain(query);
      const scans = scansOf(plan);
      if (drivingIndex) expect(scans[0]).toBe(drivingIndex);
      expect(scans.filter((s) => s.startsWith('resource')).every((s) => s === 'resource_pkey')).toBe(true);
      expect(scans).not.toContain('Seq Scan');
      // Every row any step read or dropped, across all its loops: bounded by the matches, not by CLAIMS.
      expect(rowsTouched(plan)).toBeLessThanOrEqual(10 * (matches + 1));
    });
  });

  it('keeps the same shape once the tables are analysed', async () => {
    await t.db.query('ANALYZE');
    const plan = await explain(`Claim?identifier=${CLAIM_ID_SYSTEM}|no-such-bill`);
    expect(scansOf(plan)[0]).toBe('search_token_value_idx');
    expect(rowsTouched(plan)).toBeLessThanOrEqual(10);
  });
});

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

/** EXPLAIN ANALYZE of the statement search.ts runs for `query` (first page of 20). */
async function explain(query: string): Promise<PlanNode> {
  const search = compileSearch('default', parseSearchRequest(query));
  const rows = await t.db.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${pageStatement(search)}`, [...search.params, 21, 0]);
  const json = rows[0]['QUERY PLAN'];
  return (typeof json === 'string' ? JSON.parse(json) : json)[0].Plan;
}

/** The scans in plan order: the index name, or the node type for a scan without one. */
function scansOf(node: PlanNode): string[] {
  const own = /Scan$/.test(node['Node Type']) && !/Subquery|Function|Values|Result/.test(node['Node Type']) ? [node['Index Name'] ?? node['Node Type']] : [];
  return [...own, ...(node.Plans ?? []).flatMap(scansOf)];
}

function rowsTouched(node: PlanNode): number {
  const own = node['Node Type'].endsWith('Scan')
    ? (node['Actual Rows'] + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * node['Actual Loops']
    : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + rowsTouched(child), 0);
}
