import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';

/** Debian's Chromium (no browser can be downloaded here); CHROMIUM_PATH overrides. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SHOTS_DIR = join(process.cwd(), 'test-results', 'console');

export interface Browser {
  page: Page;
  /** Runs one step; a failed step saves a screenshot named after it, then fails the test. */
  step: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
  close: () => Promise<void>;
}

export async function openBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'fb-chromium-'));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    // Amounts are written by Intl.NumberFormat in the browser's locale: one locale, so steps can read them.
    locale: 'en-US',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(Number(process.env.CONSOLE_STEP_TIMEOUT_MS ?? 15_000));
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return {
    page,
    async step(name, fn) {
      try {
        const result = await fn();
        if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
        return result;
      } catch (err) {
        mkdirSync(SHOTS_DIR, { recursive: true });
        const file = join(SHOTS_DIR, `${name.replace(/[^\w-]+/g, '-')}.png`);
        await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
        throw new Error(`step "${name}" failed (screenshot: ${file}): ${(err as Error).message}`);
      }
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
