import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

/** What /console serves (its behaviour in a browser: test/console/, npm run test:console). */
describe('/console', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('serves the page and its modules from this server only, under a strict CSP', async () => {
    const redirect = await request(t.app).get('/console');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('/console/');
    const page = await request(t.app).get('/console/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).toContain("connect-src 'self'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    // Every script and stylesheet the page names is served here; none from elsewhere.
    const urls = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]).filter((u) => !u.startsWith('data:'));
    expect(urls.length).toBeGreaterThan(2);
    for (const url of urls) {
      expect(url.startsWith('/console/'), url).toBe(true);
      expect((await request(t.app).get(url)).status, url).toBe(200);
    }
    const hooks = await request(t.app).get('/console/vendor/hooks.js');
    expect(hooks.headers['content-type']).toMatch(/^text\/javascript/);
    expect(hooks.text).not.toMatch(/from\s*["']preact["']/);
    expect(hooks.text).toContain('from"./preact.js"');
    // A view's deep link is the page; an unknown file is a 404, never a file outside public/.
    expect((await request(t.app).get('/console/deliveries')).text).toContain('<div id="root">');
    expect((await request(t.app).get('/console/nope.js')).status).toBe(404);
    expect((await request(t.app).get('/console/..%2F..%2Fpackage.json')).status).toBe(404);
    expect((await request(t.app).get('/console/../src/app.ts')).status).toBe(404);
  });

  it('is not served when CONSOLE_ENABLED=false', async () => {
    expect(loadConfig({ CONSOLE_ENABLED: 'false' }).consoleEnabled).toBe(false);
    expect(loadConfig({}).consoleEnabled).toBe(true);
    expect(() => loadConfig({ CONSOLE_ENABLED: 'no' })).toThrow(/CONSOLE_ENABLED/);
    const off = createApp({ db: t.db, logger: createLogger('silent'), console: false });
    expect((await request(off).get('/console/')).status).toBe(404);
    expect((await request(off).get('/console/app.js')).status).toBe(404);
  });
});
