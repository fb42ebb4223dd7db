import { describe, expect, it } from "vitest";

import { applyToList, SETTLE_MS, settle, type Change, type State } from "../src/react/liveList";

interface Item {
  id: string;
  v: number;
}

const change = (item: Item | null, seq: number, at: number, load = 1): Change<Item> => ({ item, seq, load, at });

describe("useLiveList's state", () => {
  const base: Item[] = [{ id: "a", v: 1 }, { id: "b", v: 1 }, { id: "c", v: 1 }];
  const state = (loaded = 1): State<Item> => ({
    base,
    loaded,
    changes: new Map([
      ["a", change({ id: "a", v: 2 }, 11, 0)], // old: settles into the base
      ["b", change(null, 12, 0)], // old and removed: dropped
      ["c", change({ id: "c", v: 3 }, 13, SETTLE_MS)], // recent: still a change (highlight)
    ]),
  });
  const items = (s: State<Item>) => applyToList(s.base!, new Map([...s.changes].map(([id, c]) => [id, c.item])));

  it("folds old changes into the base list, so the changes do not grow without bound", () => {
    const settled = settle(state(), SETTLE_MS + 1, 1);
    expect([...settled.changes.keys()]).toEqual(["c"]);
    expect(items(settled)).toEqual(items(state()));
    expect(items(settled)).toEqual([{ id: "a", v: 2 }, { id: "c", v: 3 }]);
  });

  it("leaves the changes alone while a newer load is running", () => {
    const s = state(1);
    expect(settle(s, SETTLE_MS + 1, 2)).toBe(s);
  });
});
