import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { MedplumClient } from '@medplum/core';
import type { Bundle, Claim, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';

// A FHIR client library's usual calls, unmodified, against the real server on a port of its own:
// MedplumClient. fhir-kit-client and SMART's fhirclient: clients-fhir-kit.test.ts, clients-smart.test.ts.

let t: TestApp;
let server: Server;
let medplum: MedplumClient;

beforeAll(async () => {
  t = await startTestApp();
  server = t.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  medplum = new MedplumClient({ baseUrl: `http://127.0.0.1:${port}/`, fhirUrlPath: 'fhir', fetch, cacheTime: 0 });
  medplum.setAccessToken(await t.token());
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await t.close();
});

describe('MedplumClient', () => {
  it('creates, reads, searches (chained too), updates and patches', async () => {
    const p = await medplum.createResource<Patient>({ ...patient('Client'), identifier: [{ system: 'urn:mrn', value: 'client-1' }] });
    const c = await medplum.createResource<Claim>(claim(`Patient/${p.id}`, 'client-bill'));
    expect((await medplum.readResource('Claim', c.id!)).id).toBe(c.id);
    expect((await medplum.searchResources('Claim', { identifier: `${CLAIM_ID_SYSTEM}|client-bill` })).map((r) => r.id)).toEqual([c.id]);
    expect((await medplum.searchResources('Claim', { 'patient.identifier': 'urn:mrn|client-1' })).map((r) => r.id)).toEqual([c.id]);
    const updated = await medplum.updateResource<Claim>({ ...c, status: 'cancelled' });
    expect(updated.meta?.versionId).toBe('2');
    const patched = await medplum.patchResource('Claim', c.id!, [{ op: 'replace', path: '/status', value: 'active' }]);
    expect(patched.meta?.versionId).toBe('3');
  });

  it('executeBatch with 9 entries, and a 1,000-entry transaction with conditional entries', async () => {
    const nine: Bundle = {
      resourceType: 'Bundle',
      type: 'batch',
      entry: Array.from({ length: 9 }, (_, i) => ({
        resource: claim('Patient/batch', `client-batch-${i}`),
        request: { method: 'POST', url: 'Claim', ifNoneExist: `identifier=${CLAIM_ID_SYSTEM}|client-batch-${i}` },
      })),
    };
    const batch = await medplum.executeBatch(nine);
    expect(batch.entry?.map((e) => e.response?.status)).toEqual(Array(9).fill('201'));
    const big: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: Array.from({ length: 1000 }, (_, i) => ({
        resource: claim('Patient/client-big', `client-big-${i}`),
        request: { method: 'PUT', url: `Claim?identifier=${CLAIM_ID_SYSTEM}|client-big-${i}` },
      })),
    };
    const result = await medplum.executeBatch(big);
    expect(result.type).toBe('transaction-response');
    expect(result.entry).toHaveLength(1000);
    expect(result.entry?.every((e) => e.response?.etag === 'W/"1"' && /\/_history\/1$/.test(e.response?.location ?? ''))).toBe(true);
  }, 120_000);
});
