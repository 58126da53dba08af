import { defineConfig } from 'vitest/config';

// The console's end-to-end tests in a real browser (npm run test:console): Debian's Chromium,
// driven by playwright-core. Kept out of `npm test`, which needs no browser.
export default defineConfig({
  test: {
    include: ['test/console/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
