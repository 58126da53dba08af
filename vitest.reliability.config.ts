import { defineConfig } from 'vitest/config';

/**
 * The fault suite (`npm run test:reliability`): the real server killed, cut off from its database,
 * and faced with failing receivers and hostile input. Kept out of `npm test` for its length;
 * `.ci/run` runs it on PostgreSQL.
 */
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // The scenarios load the machine on purpose: one file at a time keeps their figures apart.
    fileParallelism: false,
  },
});
