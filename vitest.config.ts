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
    // Vitest's default is one worker per core less one: on our 2-core machines, one, so every file
    // waited for the one before it while that one mostly waited on I/O (the database, receivers,
    // child processes). Three keep both cores busy: npm test 326 s -> 222 s on PGlite, and on
    // PostgreSQL about 2 minutes (4 workers: no faster on PGlite, whose WebAssembly is CPU-bound).
    maxWorkers: 3,
    hookTimeout: 120_000,
  },
});
