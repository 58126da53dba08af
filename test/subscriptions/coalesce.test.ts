import { describe, expect, it } from 'vitest';
import { coalesced } from '../../src/subscriptions/coalesce.ts';

/** The worker's claims and fan-outs run through this: one at a time, no wake-up lost. */
describe('coalesced', () => {
  it('runs once more after a run during which it was called, however many times', async () => {
    let runs = 0;
    let release!: () => void;
    const step = coalesced(
      async () => {
        runs++;
        if (runs === 1) await new Promise<void>((r) => (release = r));
        return false;
      },
      { stopped: () => false, onError: (err) => { throw err; } },
    );
    step();
    step();
    step();
    expect(runs).toBe(1); // the first is in flight; the others wait for it
    release();
    await step.settled();
    expect(runs).toBe(2);
  });

  it('goes again at once while the step says work is left, and stops when stopped', async () => {
    let runs = 0;
    let stopped = false;
    const step = coalesced(async () => ++runs < 3, { stopped: () => stopped, onError: () => {} });
    step();
    await step.settled();
    expect(runs).toBe(3);
    stopped = true;
    step();
    await step.settled();
    expect(runs).toBe(3);
  });

  it('hands a failure to onError and runs afresh on the next call', async () => {
    const errors: unknown[] = [];
    let fail = true;
    let runs = 0;
    const step = coalesced(
      async () => {
        runs++;
        if (fail) throw new Error('database away');
        return false;
      },
      { stopped: () => false, onError: (err) => errors.push(err) },
    );
    step();
    await step.settled();
    expect(errors).toHaveLength(1);
    fail = false;
    step();
    await step.settled();
    expect([runs, errors.length]).toEqual([2, 1]);
  });
});
