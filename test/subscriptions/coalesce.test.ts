import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/logger.ts';
import { coalesced } from '../../src/subscriptions/coalesce.ts';

/** A logger that keeps each line's level and message. */
function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (...args: unknown[]) => lines.push(`${level}: ${String(args.at(-1))}`);
  return { logger: { info: at('info'), error: at('error') } as unknown as Logger, lines };
}

const options = (stopped = () => false) => ({ task: 'testing', logger: recordingLogger().logger, stopped });

/** The worker's claims and fan-outs run through this: one at a time, no wake-up lost. */
describe('coalesced', () => {
  it('runs once more after a run during which it was called, however many times', async () => {
    let runs = 0;
    let release!: () => void;
    const step = coalesced(async () => {
      runs++;
      if (runs === 1) await new Promise<void>((r) => (release = r));
      return false;
    }, options());
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
    const step = coalesced(async () => ++runs < 3, options(() => stopped));
    step();
    await step.settled();
    expect(runs).toBe(3);
    stopped = true;
    step();
    await step.settled();
    expect(runs).toBe(3);
  });

  it('logs a failure once per outage and the recovery once, running afresh at each call', async () => {
    const { logger, lines } = recordingLogger();
    let fail = true;
    let runs = 0;
    const step = coalesced(async () => {
      runs++;
      if (fail) throw new Error('database away');
      return false;
    }, { task: 'testing', logger, stopped: () => false });
    for (let i = 0; i < 3; i++) {
      step();
      await step.settled();
    }
    fail = false;
    for (let i = 0; i < 2; i++) {
      step();
      await step.settled();
    }
    expect(runs).toBe(5);
    expect(lines).toEqual(['error: testing failed; retrying at every poll', 'info: testing works again']);
  });
});
