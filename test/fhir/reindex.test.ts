import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bundle, Claim } from '@medplum/fhirtypes';
import { runCommand } from '../../src/cli/commands.ts';
import { reindex } from '../../src/fhir/reindex.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';

// Resources written before a search parameter existed have no index rows for it. The test makes
// that state as an older server left it: the rows of the parameter are absent (deleted here, in
// the tables migrations/001 defines), and the search misses the resource until it is reindexed.

let t: TestApp;
let token: string;
beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
});
afterAll(() => t.close());

const api = () => ({
  post: (path: string, body: object) => request(t.app).post(path).auth(token, { type: 'bearer' }).send(body),
  get: (path: string) => request(t.app).get(path).auth(token, { type: 'bearer' }),
  patch: (path: string, body: object) =>
    request(t.app).patch(path).auth(token, { type: 'bearer' }).set('content-type', 'application/json-patch+json').send(JSON.stringify(body)),
});
const ids = async (path: string): Promise<string[]> => {
  const res = await api().get(path);
  expect(res.status).toBe(200);
  return ((res.body as Bundle).entry ?? []).map((e) => e.resource!.id!).toSorted();
};
async function forgetParameter(resourceType: string, table: string, code: string): Promise<void> {
  await t.db.query(`DELETE FROM search_${table} WHERE resource_type = $1 AND code = $2`, [resourceType, code]);
}
async function cli(...args: string[]): Promise<{ code: number; out: any; err: string }> {
  const { code, stdout, stderr } = await runCommand(t.db, t.auth, args);
  return { code, out: stdout ? JSON.parse(stdout) : undefined, err: stderr };
}

describe('reindex', () => {
  it('finds a resource written before its parameter was indexed, after `reindex --type`; other types untouched', async () => {
    const p = (await api().post('/fhir/Patient', patient('Reindexed'))).body;
    const c = (await api().post('/fhir/Claim', claim(`Patient/${p.id}`, 'reindex-1'))).body as Claim;
    await forgetParameter('Claim', 'token', 'identifier');
    await forgetParameter('Claim', 'reference', 'patient');
    await forgetParameter('Patient', 'string', 'family');
    expect(await ids(`/fhir/Claim?identifier=${CLAIM_ID_SYSTEM}|reindex-1`)).toEqual([]);
    expect(await ids(`/fhir/Claim?patient=Patient/${p.id}`)).toEqual([]);

    const run = await cli('reindex', '--type', 'Claim');
    expect(run.code).toBe(0);
    expect(run.out.reindexed).toBeGreaterThanOrEqual(1);
    expect(await ids(`/fhir/Claim?identifier=${CLAIM_ID_SYSTEM}|reindex-1`)).toEqual([c.id]);
    expect(await ids(`/fhir/Claim?patient=Patient/${p.id}`)).toEqual([c.id]);
    expect(await ids('/fhir/Patient?family=Reindexed')).toEqual([]); // not a Claim: not reindexed

    expect((await cli('reindex')).code).toBe(0);
    expect(await ids('/fhir/Patient?family=Reindexed')).toEqual([p.id]);
    // Twice is the same index: no duplicate rows, the same answer.
    expect((await cli('reindex', '--type', 'Claim')).code).toBe(0);
    expect(await ids(`/fhir/Claim?identifier=${CLAIM_ID_SYSTEM}|reindex-1`)).toEqual([c.id]);
  });

  it('resumes after the last key an interrupted run reported', async () => {
    const tenant = 'reindex-resume';
    const other = await t.token('system/*.cruds', tenant);
    for (let i = 0; i < 5; i++) {
      expect((await request(t.app).post('/fhir/Claim').auth(other, { type: 'bearer' }).send(claim('Patient/r', `resume-${i}`))).status).toBe(201);
    }
    await forgetParameter('Claim', 'token', 'identifier');
    const seen: string[] = [];
    const interrupted = reindex(t.db, { tenantId: tenant, batchSize: 2 }, (p) => {
      seen.push(p.last!.id);
      throw new Error('stopped after the first batch');
    });
    await expect(interrupted).rejects.toThrow('stopped');
    const found = async () => {
      const res = await request(t.app).get(`/fhir/Claim?identifier=${CLAIM_ID_SYSTEM}|resume-0,resume-1,resume-2,resume-3,resume-4`).auth(other, { type: 'bearer' });
      return ((res.body as Bundle).entry ?? []).length;
    };
    expect(await found()).toBe(2); // the first batch committed

    const resumed = await cli('reindex', '--tenant', tenant, '--batch', '2', '--after', `${tenant}/Claim/${seen[0]}`);
    expect([resumed.code, resumed.out.reindexed]).toEqual([0, 3]);
    expect(resumed.out.last).toMatch(new RegExp(`^${tenant}/Claim/`));
    expect(await found()).toBe(5);
    expect((await cli('reindex', '--tenant', tenant, '--after', resumed.out.last)).out).toEqual({ reindexed: 0 });
  });

  it('runs while resources are being updated: each ends indexed as its current version', async () => {
    const created: Claim[] = [];
    for (let i = 0; i < 30; i++) created.push((await api().post('/fhir/Claim', claim('Patient/busy', `busy-${i}`))).body);
    const updates = (async () => {
      for (const c of created) {
        const res = await api().patch(`/fhir/Claim/${c.id}`, [{ op: 'replace', path: '/identifier/0/value', value: `${c.identifier![0].value}-v2` }]);
        expect(res.status).toBe(200);
      }
    })();
    await Promise.all([updates, reindex(t.db, { resourceType: 'Claim', batchSize: 3 })]);
    const olds = created.map((c) => c.identifier![0].value).join(',');
    const news = created.map((c) => `${c.identifier![0].value}-v2`).join(',');
    expect(await ids(`/fhir/Claim?identifier=${olds}&_count=100`)).toEqual([]);
    expect(await ids(`/fhir/Claim?identifier=${news}&_count=100`)).toEqual(created.map((c) => c.id).toSorted());
  });

  it('POST /admin/reindex does it in bounded steps while the server runs (the embedded database\'s way)', async () => {
    const admin = await t.token('admin');
    const post = (body: unknown, as = admin) => request(t.app).post('/admin/reindex').auth(as, { type: 'bearer' }).send(body as object);
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push((await api().post('/fhir/Claim', claim('Patient/steps', `steps-${i}`))).body.id);
    await forgetParameter('Claim', 'token', 'identifier');
    const wanted = `/fhir/Claim?identifier=${created.map((_, i) => `${CLAIM_ID_SYSTEM}|steps-${i}`).join(',')}`;
    expect(await ids(wanted)).toEqual([]);

    let step = await post({ type: 'Claim', max: 2, batch: 1 });
    expect([step.status, step.body.reindexed, step.body.done]).toEqual([200, 2, false]);
    let steps = 1;
    while (!step.body.done) {
      step = await post({ type: 'Claim', max: 2, batch: 1, after: step.body.last });
      expect(step.status).toBe(200);
      steps++;
    }
    expect(steps).toBeGreaterThanOrEqual(3);
    expect(await ids(wanted)).toEqual(created.toSorted());

    expect((await post({ type: 'Claim' }, token)).status).toBe(403); // FHIR scopes are not the admin scope
    for (const body of [{ max: 0 }, { type: 'Nope' }, { after: 'x' }, { batch: 'many' }, { other: 1 }, []]) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toMatch(/^Invalid/);
    }
    const malformed = await request(t.app).post('/admin/reindex').auth(admin, { type: 'bearer' }).set('content-type', 'application/json').send('{');
    expect([malformed.status, malformed.body.error]).toEqual([400, 'Invalid request body: malformed JSON']);
  });

  it('refuses a bad option with the usage, and writes nothing', async () => {
    for (const args of [['--type', 'Nope'], ['--batch', '0'], ['--batch', 'x'], ['--after', 'only/two'], ['--after', '//']]) {
      const run = await cli('reindex', ...args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.err).toContain('usage: fhir-billing');
    }
  });
});
