import { describe, expect, it } from "vitest";

import { EventLedger } from "../src/core/ledger";
import { appointmentEvent as ev } from "./fakes";

const ids = (events: { id: string }[]) => events.map((e) => e.id);

describe("EventLedger", () => {
  it("hands each event id over once", () => {
    const ledger = new EventLedger(0);
    expect(ids(ledger.receive(ev(1)))).toEqual(["ev-1"]);
    expect(ledger.receive(ev(1))).toEqual([]);
    expect(ledger.seq).toBe(1);
  });

  it("drops events the loaded view already reflects", () => {
    const ledger = new EventLedger(10);
    expect(ledger.receive(ev(9))).toEqual([]);
    expect(ids(ledger.receive(ev(11)))).toEqual(["ev-11"]);
  });

  it("holds live events during a replay and hands them over after it, in seq order", () => {
    const ledger = new EventLedger(10);
    ledger.startReplay();
    expect(ledger.receive(ev(15))).toEqual([]);
    expect(ledger.receive(ev(14))).toEqual([]);
    expect(ledger.seq).toBe(10); // a live event does not jump over the gap
    expect(ids(ledger.replayed([ev(12), ev(11), ev(14)]))).toEqual(["ev-11", "ev-12", "ev-14"]);
    ledger.advance(14);
    expect(ids(ledger.finishReplay())).toEqual(["ev-15"]);
    expect(ledger.seq).toBe(15);
  });

  it("keeps holding live events across a failed replay and a new start, without moving seq", () => {
    const ledger = new EventLedger(10);
    ledger.startReplay();
    ledger.receive(ev(14));
    ledger.startReplay(); // the retry (or the next connect) of a replay that failed
    expect(ledger.seq).toBe(10);
    expect(ledger.behind(13)).toBe(true);
    expect(ids(ledger.replayed([ev(11), ev(12), ev(13)]))).toEqual(["ev-11", "ev-12", "ev-13"]);
    ledger.advance(13);
    expect(ids(ledger.finishReplay())).toEqual(["ev-14"]);
  });

  it("reports a gap only when the tenant is ahead of the view", () => {
    const ledger = new EventLedger(10);
    expect(ledger.behind(10)).toBe(false);
    expect(ledger.behind(11)).toBe(true);
  });

  it("after a refetch, drops held events the refetched view covers", () => {
    const ledger = new EventLedger(10);
    ledger.startReplay();
    ledger.receive(ev(40));
    ledger.receive(ev(60));
    ledger.advance(50); // the view was reloaded up to 50
    expect(ids(ledger.finishReplay())).toEqual(["ev-60"]);
  });

  it("forgets old ids beyond its bound but still drops their events", () => {
    const ledger = new EventLedger(0, 3);
    for (let seq = 1; seq <= 5; seq++) ledger.receive(ev(seq));
    expect(ledger.receive(ev(1))).toEqual([]);
  });
});
