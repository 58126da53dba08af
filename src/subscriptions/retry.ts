/** Retry schedules: "30s,2m,10m,1h" → milliseconds; jitter; which answers are worth retrying. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseSchedule(text: string): number[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(part);
      if (!m) throw new Error(`Invalid duration '${part}' (use e.g. 30s, 2m, 1h)`);
      return Math.round(Number(m[1]) * UNIT_MS[m[2]]);
    });
}

/** The delay before attempt `attempt + 1`, ±20% jitter so that failing receivers are not hit in lockstep. */
export function retryDelayMs(schedule: readonly number[], attempt: number, retryAfterMs?: number): number {
  const base = schedule[Math.min(attempt - 1, schedule.length - 1)] ?? 0;
  const jittered = base * (0.8 + Math.random() * 0.4);
  return Math.max(jittered, retryAfterMs ?? 0);
}

/** Network errors and timeouts (status undefined), 408, 429 and 5xx are retried; other answers are final. */
export function isRetryable(status: number | undefined): boolean {
  return status === undefined || status === 408 || status === 429 || status >= 500;
}

/** Retry-After as seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
