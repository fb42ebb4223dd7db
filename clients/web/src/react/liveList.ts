// A list kept current by events: created and updated events upsert an item, removing
// events take it out, and an older event never overwrites a newer one.

import { useCallback, useState } from "react";

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

interface State<T> {
  base: T[] | undefined;
  byId: Map<string, T | null>; // null: removed by an event
  seqs: Map<string, number>;
}

export function applyToList<T extends { id: string }>(items: readonly T[], changed: ReadonlyMap<string, T | null>): T[] {
  const out = items.filter((item) => !changed.has(item.id)).concat();
  for (const item of changed.values()) if (item) out.push(item);
  return out;
}

export function useLiveList<T extends { id: string }, E extends EventType>(
  types: readonly E[],
  options: LiveListOptions<T, E>,
): LiveList<T> {
  const [state, setState] = useState<State<T>>({ base: undefined, byId: new Map(), seqs: new Map() });
  const { load, patientId } = options;
  const query = useHubQuery(async () => {
    const base = await load();
    // A fresh load supersedes the events applied so far.
    setState({ base, byId: new Map(), seqs: new Map() });
    return base;
  }, [...(options.deps ?? []), patientId]);
  const { reload } = query;
  useHubEvents(
    types,
    (event) => {
      const id = event.entityId;
      if (options.accepts && !options.accepts(event)) return;
      setState((s) => {
        if ((s.seqs.get(id) ?? 0) >= event.seq) return s;
        const item = options.removes?.(event) ? null : (options.toItem ? options.toItem(event) : (event.data as unknown as T));
        return { base: s.base, byId: new Map(s.byId).set(id, item), seqs: new Map(s.seqs).set(id, event.seq) };
      });
      options.onApplied?.(event);
    },
    { patientId, onRefetch: useCallback(() => reload(), [reload]) },
  );
  const items = state.base ? applyToList(state.base, state.byId) : [];
  return { items, changes: state.seqs, loading: state.base === undefined && !query.error, error: query.error, reload };
}
