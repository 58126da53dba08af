import { Writable } from 'node:stream';
import pino from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

/** What a request's completion line carries: what an operator searches by, and no headers. */
const lines: Record<string, any>[] = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    lines.push(...String(chunk).split('\n').filter(Boolean).map((l) => JSON.parse(l)));
    done();
  },
});
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe('request logs', () => {
  it('a completion line has the request id, method, path, status, time and tenant, and no headers', async () => {
    const app = createApp({ db: t.db, logger: pino({ level: 'info' }, sink), auth: t.auth });
    const token = await t.token();
    const res = await request(app).get('/fhir/Patient?name=x').set('X-Request-Id', 'log-line-1').set('User-Agent', 'a'.repeat(300)).auth(token, { type: 'bearer' });
    expect(res.status).toBe(200);
    const line = lines.find((l) => l.req?.id === 'log-line-1');
    expect(line).toMatchObject({ req: { id: 'log-line-1', method: 'GET', url: '/fhir/Patient?name=x' }, res: { statusCode: 200 }, tenant: 'default', responseTime: expect.any(Number) });
    expect(Object.keys(line!.req).sort()).toEqual(['id', 'method', 'url']);
    expect(JSON.stringify(line)).not.toContain('aaaaaaaaaa');
    expect(JSON.stringify(line)).not.toContain(token);
    expect(JSON.stringify(line).length).toBeLessThan(400);
  });
});
