// A list kept current by events: created and updated events upsert an item, removing
// events take it out, and an older event never overwrites a newer one.

import { useCallback, useRef, useState } from "react";

import type { EventType, HubEvent } from "../core/catalog";
import { useHubEvents, useHubQuery } from "./hooks";

export interface LiveListOptions<T, E extends EventType> {
  /** Loads the list (after the client's baseline; again after a refetch). */
  load: () => Promise<T[]>;
  /** The item an event describes (default: its `data`). */
  toItem?: (event: HubEvent<E>) => T;
  /** Events that take the item out of the list (for example a cancellation). */
  removes?: (event: HubEvent<E>) => boolean;
  /** Events that only concern some items (for example another day's appointments). */
  accepts?: (event: HubEvent<E>) => boolean;
  /** Called after an event was applied: a place for toasts. */
  onApplied?: (event: HubEvent<E>) => void;
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

interface Change<T> {
  item: T | null; // null: removed by an event
  seq: number;
  load: number; // the load that was running or done when the event arrived
}

interface State<T> {
  base: T[] | undefined;
  changes: Map<string, Change<T>>;
}

export function applyToList<T extends { id: string }>(items: readonly T[], changed: ReadonlyMap<string, T | null>): T[] {
  const out = items.filter((item) => !changed.has(item.id));
  for (const item of changed.values()) if (item) out.push(item);
  return out;
}

export function useLiveList<T extends { id: string }, E extends EventType>(
  types: readonly E[],
  options: LiveListOptions<T, E>,
): LiveList<T> {
  const [state, setState] = useState<State<T>>({ base: undefined, changes: new Map() });
  const loads = useRef(0);
  const { load, patientId } = options;
  const query = useHubQuery(async () => {
    const started = ++loads.current;
    const base = await load();
    // The fresh list supersedes the events applied before this load began. Events that
    // arrived while it ran may be newer than what it read: they stay on top of it.
    setState((s) => ({ base, changes: new Map([...s.changes].filter(([, c]) => c.load >= started)) }));
    return base;
  }, [...(options.deps ?? []), patientId]);
  const { reload } = query;
  useHubEvents(
    types,
    (event) => {
      if (options.accepts && !options.accepts(event)) return;
      const id = event.entityId;
      const item = options.removes?.(event) ? null : options.toItem ? options.toItem(event) : (event.data as unknown as T);
      const load = loads.current;
      setState((s) => {
        if ((s.changes.get(id)?.seq ?? 0) >= event.seq) return s; // never older over newer
        return { base: s.base, changes: new Map(s.changes).set(id, { item, seq: event.seq, load }) };
      });
      options.onApplied?.(event);
    },
    { patientId, onRefetch: useCallback(() => reload(), [reload]) },
  );
  const items = state.base ? applyToList(state.base, new Map([...state.changes].map(([id, c]) => [id, c.item]))) : [];
  const changes = new Map([...state.changes].map(([id, c]) => [id, c.seq]));
  return { items, changes, loading: state.base === undefined && !query.error, error: query.error, reload };
}
