/**
 * Runs `step` one at a time: a call while it runs asks for one more run after it, however many
 * calls came meanwhile, and `step` itself answers true when it left work for another go at once.
 * What the worker's claims and fan-outs both need: woken by every NOTIFY and poll, never run twice
 * side by side, never missing a wake-up that came during a run.
 */
export interface Coalesced {
  /** Run now, or once more after the run in flight. */
  (): void;
  /** Resolves when no run is in flight. */
  settled(): Promise<void>;
}

export function coalesced(step: () => Promise<boolean>, options: { stopped: () => boolean; onError: (err: unknown) => void }): Coalesced {
  let running: Promise<void> | undefined;
  let again = false;
  const run = (): void => {
    if (options.stopped()) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        do {
          again = false;
          if (await step()) again = true;
        } while (again && !options.stopped());
      } catch (err) {
        options.onError(err);
      } finally {
        running = undefined;
      }
    })();
  };
  return Object.assign(run, { settled: () => running ?? Promise.resolve() });
}
