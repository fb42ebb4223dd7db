import { afterEach, describe, expect, it, vi } from "vitest";

import { Pulse } from "../src/react/pulse";

afterEach(() => {
  vi.useRealTimers();
});

describe("Pulse (the Highlight's timing)", () => {
  it("marks a change for its duration", () => {
    vi.useFakeTimers();
    const seen: boolean[] = [];
    const pulse = new Pulse(2500, (on) => seen.push(on));
    pulse.mark();
    vi.advanceTimersByTime(2499);
    expect(pulse.on).toBe(true);
    vi.advanceTimersByTime(1);
    expect(pulse.on).toBe(false);
    expect(seen).toEqual([true, false]);
  });

  it("stays on through a burst and goes off once, after the last change", () => {
    vi.useFakeTimers();
    const seen: boolean[] = [];
    const pulse = new Pulse(2500, (on) => seen.push(on));
    for (let i = 0; i < 5; i++) {
      pulse.mark();
      vi.advanceTimersByTime(1000);
    }
    expect(pulse.on).toBe(true);
    vi.advanceTimersByTime(1500);
    expect(pulse.on).toBe(false);
    expect(seen).toEqual([true, false]); // no off-and-on flashes in between
  });
});
