import type { Logger } from '../logger.ts';

/**
 * Runs `step` one at a time: a call while it runs asks for one more run after it, however many
 * calls came meanwhile, and `step` itself answers true when it left work for another go at once.
 * What the worker's claims and fan-outs both need: woken by every NOTIFY and poll, never run twice
 * side by side, never missing a wake-up that came during a run. A failure is logged once per
 * outage, not once per poll (polling goes on and picks up when the database is back), and so is
 * the recovery.
 */
export interface Coalesced {
  /** Run now, or once more after the run in flight. */
  (): void;
  /** Resolves when no run is in flight. */
  settled(): Promise<void>;
}

export interface CoalescedOptions {
  /** What `step` does, for the log: "claiming notifications". */
  task: string;
  logger: Logger;
  stopped: () => boolean;
}

export function coalesced(step: () => Promise<boolean>, { task, logger, stopped }: CoalescedOptions): Coalesced {
  let running: Promise<void> | undefined;
  let again = false;
  let failing = false;
  const run = (): void => {
    if (stopped()) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        do {
          again = false;
          if (await step()) again = true;
          if (failing) logger.info(`${task} works again`);
          failing = false;
        } while (again && !stopped());
      } catch (err) {
        if (!failing) logger.error({ err }, `${task} failed; retrying at every poll`);
        failing = true;
      } finally {
        running = undefined;
      }
    })();
  };
  return Object.assign(run, { settled: () => running ?? Promise.resolve() });
}
