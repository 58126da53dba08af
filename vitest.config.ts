import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The fault suite has its own config and script (vitest.reliability.config.ts).
    // The console's browser tests too (vitest.console.config.ts, npm run test:console).
    exclude: [...configDefaults.exclude, 'test/reliability/**', 'test/console/**'],
    // Caps against a hung test, not speed checks: tests that start server processes need room on a
    // loaded 2-core machine.
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
