import { describe, expect, it } from "vitest";

import { backoffDelay, parseRetryAfter, renewalDelay, retryDelay } from "../src/core/timing";

describe("backoffDelay", () => {
  const backoff = { baseMs: 500, maxMs: 15_000 };

  it("grows with the attempt up to the cap, with jitter below the ceiling", () => {
    expect(backoffDelay(0, backoff, () => 1)).toBe(500);
    expect(backoffDelay(3, backoff, () => 1)).toBe(4000);
    expect(backoffDelay(20, backoff, () => 1)).toBe(15_000);
    expect(backoffDelay(3, backoff, () => 0.5)).toBe(2000);
  });

  it("never retries at once", () => {
    expect(backoffDelay(5, backoff, () => 0)).toBe(250);
  });
});

describe("renewalDelay", () => {
  it("renews at 80% of the remaining lifetime, not sooner than the floor", () => {
    const now = Date.parse("2026-11-26T09:00:00Z");
    expect(renewalDelay("2026-11-26T10:00:00Z", now)).toBe(2_880_000);
    expect(renewalDelay("2026-11-26T09:00:03Z", now)).toBe(5_000);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-11-26T09:00:00Z");

  it("reads delta-seconds and HTTP dates, capped at five minutes", () => {
    expect(parseRetryAfter("7", now)).toBe(7_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Thu, 26 Nov 2026 09:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Thu, 26 Nov 2026 08:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("86400", now)).toBe(300_000);
  });

  it("is null for no header or nonsense", () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter("", now)).toBeNull();
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter("-3", now)).toBeNull();
  });
});

describe("retryDelay", () => {
  const backoff = { baseMs: 500, maxMs: 15_000 };

  it("is the backoff when the server said nothing", () => {
    expect(retryDelay(3, null, backoff, () => 1)).toBe(backoffDelay(3, backoff, () => 1));
  });

  it("never comes before the server's Retry-After, and spreads a quarter of it after", () => {
    expect(retryDelay(0, 20_000, backoff, () => 0)).toBe(20_000);
    expect(retryDelay(0, 20_000, backoff, () => 1)).toBe(25_000);
    expect(retryDelay(0, 20_000, backoff, () => 0.5)).toBe(22_500);
    // A short Retry-After still gets some spread; a long backoff still wins.
    expect(retryDelay(0, 1_000, backoff, () => 1)).toBe(1_250);
    expect(retryDelay(20, 1_000, backoff, () => 1)).toBe(15_000);
  });
});
