// Reconnect backoff and credential renewal times: pure functions, so tests can pin them.

export interface Backoff {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 500, maxMs: 15_000 };

/** "Full jitter": a random delay up to base * 2^attempt (capped), so that many
 * browsers that lost the broker together do not come back in lockstep. */
export function backoffDelay(attempt: number, backoff: Backoff = DEFAULT_BACKOFF, random = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(backoff.baseMs / 2, Math.round(random() * ceiling));
}

/** Renew at about 80% of the remaining lifetime, never sooner than `floorMs`. */
export function renewalDelay(expiresAt: string, now: number, floorMs = 5_000): number {
  const left = Date.parse(expiresAt) - now;
  return Math.max(floorMs, Math.floor(left * 0.8));
}
