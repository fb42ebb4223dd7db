// The client's memory of what it has applied (contract section 7): the seq up to which
// its view is complete, the event ids it has seen, and the live events it holds back
// while a replay fills a gap, so that handlers always see one entity's events in order.

import type { HubEvent } from "./catalog";

export class EventLedger {
  /** The view reflects every event of the tenant up to this seq. */
  private applied: number;
  private readonly seen = new Set<string>();
  private held: HubEvent[] | null = null;

  constructor(seq: number, private readonly maxIds = 10_000) {
    this.applied = seq;
  }

  get seq(): number {
    return this.applied;
  }

  get catchingUp(): boolean {
    return this.held !== null;
  }

  /** True when the tenant has events beyond what this view reflects. */
  behind(latestSeq: number): boolean {
    return latestSeq > this.applied;
  }

  /** A live event: the events to hand to handlers now (none, or this one). */
  receive(event: HubEvent): HubEvent[] {
    if (this.known(event)) return [];
    if (this.held) {
      // A live event must not move seq past the events the replay is still fetching.
      if (!this.held.some((e) => e.id === event.id)) this.held.push(event);
      return [];
    }
    this.remember(event);
    this.applied = Math.max(this.applied, event.seq);
    return [event];
  }

  /** Start filling a gap: live events are held until `finishReplay`. */
  startReplay(): void {
    this.held ??= [];
  }

  /** One page of replayed events (oldest first): the ones to hand to handlers. */
  replayed(events: readonly HubEvent[]): HubEvent[] {
    const fresh = [...events].sort((a, b) => a.seq - b.seq).filter((e) => !this.known(e));
    for (const e of fresh) this.remember(e);
    return fresh;
  }

  /** The replay (or a refetch of the view) has made the view complete up to `seq`. */
  advance(seq: number): void {
    this.applied = Math.max(this.applied, seq);
  }

  /** End of the replay: the held live events that are still new, in seq order. */
  finishReplay(): HubEvent[] {
    const held = this.held ?? [];
    this.held = null;
    const out: HubEvent[] = [];
    for (const e of held.sort((a, b) => a.seq - b.seq)) {
      if (this.known(e)) continue;
      this.remember(e);
      this.applied = Math.max(this.applied, e.seq);
      out.push(e);
    }
    return out;
  }

  private known(event: HubEvent): boolean {
    // At or below `applied` the view already reflects it (it was loaded or replayed).
    return this.seen.has(event.id) || event.seq <= this.applied;
  }

  private remember(event: HubEvent): void {
    this.seen.add(event.id);
    if (this.seen.size > this.maxIds) {
      // Sets iterate in insertion order: forget the oldest. Its seq is long below
      // `applied`, so it is still recognised as known.
      this.seen.delete(this.seen.values().next().value as string);
    }
  }
}
