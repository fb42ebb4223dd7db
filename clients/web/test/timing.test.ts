import { describe, expect, it } from "vitest";

import { backoffDelay, renewalDelay } from "../src/core/timing";

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
