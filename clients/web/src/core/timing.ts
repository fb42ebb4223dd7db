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

/** A Retry-After beyond this is read as this: a confused proxy must not park a browser for a day. */
export const MAX_RETRY_AFTER_MS = 300_000;

/** Milliseconds from a `Retry-After` header (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | null {
  const text = value?.trim();
  if (!text) return null;
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  const when = /[A-Za-z]/.test(text) ? Date.parse(text) : NaN; // an HTTP date names its day and month
  if (Number.isNaN(when)) return null;
  return Math.min(Math.max(when - now, 0), MAX_RETRY_AFTER_MS);
}

/** The delay before retry number `attempt`: our backoff, and never before the server's
 * `Retry-After`. After it, a random share of a quarter of it (at least half the base),
 * so that the browsers a limit refused together do not all come back in the same second. */
export function retryDelay(
  attempt: number,
  retryAfterMs: number | null,
  backoff: Backoff = DEFAULT_BACKOFF,
  random = Math.random,
): number {
  const ours = backoffDelay(attempt, backoff, random);
  if (retryAfterMs === null) return ours;
  const spread = Math.max(backoff.baseMs / 2, retryAfterMs / 4);
  return Math.max(ours, retryAfterMs + Math.round(random() * spread));
}

/** Renew at about 80% of the remaining lifetime, never sooner than `floorMs`. */
export function renewalDelay(expiresAt: string, now: number, floorMs = 5_000): number {
  const left = Date.parse(expiresAt) - now;
  return Math.max(floorMs, Math.floor(left * 0.8));
}
