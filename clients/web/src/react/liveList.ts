// A list kept current by events: created and updated events upsert an item, removing
// events take it out, and an older event never overwrites a newer one.

import { useCallback, useRef, useState } from "react";

import type { EventType, HubEvent } from "../core/catalog";
import { useEventToasts, useHubEvents, useHubQuery } from "./hooks";

export interface LiveListOptions<T, E extends EventType> {
  /** Loads the list (after the client's baseline; again after a refetch). */
  load: () => Promise<T[]>;
  /** The item an event describes (default: its `data`). */
  toItem?: (event: HubEvent<E>) => T;
  /** Events that take the item out of the list (for example a cancellation). */
  removes?: (event: HubEvent<E>) => boolean;
  /** Events that only concern some items (for example another day's appointments). */
  accepts?: (event: HubEvent<E>) => boolean;
  /** Called after an event was applied: a place for custom toasts. */
  onApplied?: (event: HubEvent<E>) => void;
  /** Toast each applied event (TOAST_TEXT) unless this window made it. */
  showToasts?: boolean;
  patientId?: string | undefined;
  /** Ids the load depends on (compared as strings). */
  deps?: readonly (string | number | undefined)[];
}

export interface LiveList<T> {
  items: T[];
  /** id -> seq of the last event applied to that item: a Highlight's change key. */
  changes: ReadonlyMap<string, number>;
  loading: boolean;
  error: Error | undefined;
  reload: () => void;
}

export interface Change<T> {
  item: T | null; // null: removed by an event
  seq: number;
  load: number; // the load that was running or done when the event arrived
  at: number; // when it was applied (ms)
}

export interface State<T> {
  base: T[] | undefined;
  changes: Map<string, Change<T>>;
  loaded: number; // the load whose answer `base` is
}

/** Changes older than this are folded into the base list, so `changes` stays small. */
export const SETTLE_MS = 30_000;

export function applyToList<T extends { id: string }>(items: readonly T[], changed: ReadonlyMap<string, T | null>): T[] {
  const out = items.filter((item) => !changed.has(item.id));
  for (const item of changed.values()) if (item) out.push(item);
  return out;
}

/** Folds the changes applied before `now - SETTLE_MS` into the base list (and drops
 * removed items), but only while no load is running (`current` is the newest load): a
 * running load's answer replaces the base, and the changes made meanwhile must stay on
 * top of it. */
export function settle<T extends { id: string }>(s: State<T>, now: number, current: number): State<T> {
  if (!s.base || s.loaded !== current) return s;
  const old = [...s.changes].filter(([, c]) => c.at <= now - SETTLE_MS);
  if (old.length === 0) return s;
  const changes = new Map(s.changes);
  for (const [id] of old) changes.delete(id);
  return { base: applyToList(s.base, new Map(old.map(([id, c]) => [id, c.item]))), changes, loaded: s.loaded };
}

export function useLiveList<T extends { id: string }, E extends EventType>(
  types: readonly E[],
  options: LiveListOptions<T, E>,
): LiveList<T> {
  const [state, setState] = useState<State<T>>({ base: undefined, changes: new Map(), loaded: 0 });
  const loads = useRef(0);
  const { load, patientId } = options;
  const query = useHubQuery(async () => {
    const started = ++loads.current;
    const base = await load();
    // The fresh list supersedes the events applied before this load began. Events that
    // arrived while it ran may be newer than what it read: they stay on top of it.
    setState((s) => ({ base, changes: new Map([...s.changes].filter(([, c]) => c.load >= started)), loaded: started }));
    return base;
  }, [...(options.deps ?? []), patientId]);
  const { reload } = query;
  const toast = useEventToasts(options.showToasts ?? false);
  useHubEvents(
    types,
    (event) => {
      if (options.accepts && !options.accepts(event)) return;
      const id = event.entityId;
      const item = options.removes?.(event) ? null : options.toItem ? options.toItem(event) : (event.data as unknown as T);
      const load = loads.current;
      const at = Date.now();
      setState((s) => {
        if ((s.changes.get(id)?.seq ?? 0) >= event.seq) return s; // never older over newer
        const changes = new Map(s.changes).set(id, { item, seq: event.seq, load, at });
        return settle({ base: s.base, changes, loaded: s.loaded }, at, load);
      });
      options.onApplied?.(event);
      toast(event as HubEvent);
    },
    { patientId, onRefetch: useCallback(() => reload(), [reload]) },
  );
  const items = state.base ? applyToList(state.base, new Map([...state.changes].map(([id, c]) => [id, c.item]))) : [];
  const changes = new Map([...state.changes].map(([id, c]) => [id, c.seq]));
  return { items, changes, loading: state.base === undefined && !query.error, error: query.error, reload };
}
