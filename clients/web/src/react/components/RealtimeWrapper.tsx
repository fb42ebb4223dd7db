// A drop-in for the Socket.IO version's RealtimeWrapper: wrap a view, name the events it
// shows, and it shows the live status, highlights the children that changed and asks
// the view to reload when the client missed more than it can replay.

import { createContext, createElement, useCallback, useContext, useState, type HTMLAttributes, type ReactNode } from "react";

import type { EventType, HubEvent } from "../../core/catalog";
import { useHubStatus } from "../context";
import { useHubEvents } from "../hooks";
import { Highlight } from "./Highlight";
import { LiveIndicator } from "./LiveIndicator";

/** entity id -> seq of the last event about it that this wrapper saw. */
export type Changes = ReadonlyMap<string, number>;

// Enough for any screen; the oldest are dropped first, so the map stays small.
const MAX_CHANGES = 500;

interface Live {
  changes: Changes;
  ms: number | undefined;
}

const LiveContext = createContext<Live>({ changes: new Map(), ms: undefined });

export interface RealtimeWrapperProps<T extends EventType> extends Omit<HTMLAttributes<HTMLElement>, "children"> {
  /** The event types the view shows (for example `typesOf("appointment")`). */
  types: readonly T[];
  /** Only this patient's events. */
  patientId?: string | undefined;
  /** The client missed more than it can replay (a long outage, pruned events): reload. */
  onRefetch?: () => void;
  /** Each new event, after the wrapper marked its entity as changed. */
  onEvent?: (event: HubEvent<T>) => void;
  /** Toast each event another window made (default true; needs a ToastProvider). */
  showToasts?: boolean;
  /** Show the Live / Reconnecting indicator above the children (default true). */
  showStatus?: boolean;
  /** How long a changed child stays highlighted (ms). */
  highlightMs?: number;
  /** The element to render (default `section`). */
  as?: string;
  children?: ReactNode | ((changes: Changes) => ReactNode);
}

/** Wraps a view that shows live data. Mark each item with `<LiveItem id={entityId}>`
 * (or read `useLiveChange(id)`) and it is highlighted when an event about it arrives.
 * The element carries `data-status` (connecting, live, reconnecting, offline) and
 * `data-refetches` (how often the view was asked to reload). */
export function RealtimeWrapper<T extends EventType>({
  types,
  patientId,
  onRefetch,
  onEvent,
  showToasts = true,
  showStatus = true,
  highlightMs,
  as = "section",
  className,
  children,
  ...rest
}: RealtimeWrapperProps<T>) {
  const status = useHubStatus();
  const [changes, setChanges] = useState<Map<string, number>>(() => new Map());
  const [refetches, setRefetches] = useState(0);
  const refetch = useCallback(() => {
    setRefetches((n) => n + 1);
    onRefetch?.();
  }, [onRefetch]);
  useHubEvents(
    types,
    (event) => {
      setChanges((m) => {
        if ((m.get(event.entityId) ?? 0) >= event.seq) return m;
        const next = new Map(m);
        next.delete(event.entityId); // re-insert: the newest change is the last
        next.set(event.entityId, event.seq);
        for (const id of next.keys()) {
          if (next.size <= MAX_CHANGES) break;
          next.delete(id);
        }
        return next;
      });
      onEvent?.(event);
    },
    { patientId, onRefetch: refetch, showToasts },
  );
  const live: Live = { changes, ms: highlightMs };
  return createElement(
    as,
    { ...rest, className: ["hub-realtime", className].filter(Boolean).join(" "), "data-status": status, "data-refetches": refetches },
    showStatus && <LiveIndicator />,
    <LiveContext.Provider value={live}>{typeof children === "function" ? children(changes) : children}</LiveContext.Provider>,
  );
}

/** The change key of one entity inside a RealtimeWrapper: the seq of its last event
 * (undefined until one arrives). */
export function useLiveChange(id: string): number | undefined {
  return useContext(LiveContext).changes.get(id);
}

export interface LiveItemProps extends HTMLAttributes<HTMLElement> {
  /** The entity id the item shows (an event's `entityId`; a patient's id for patient events). */
  id: string;
  /** The element to render (default `div`; `tr` in a table). */
  as?: string;
  children?: ReactNode;
}

/** One child of a RealtimeWrapper, highlighted (class `hub-changed`, `data-changed`)
 * for a few seconds after an event about it. */
export function LiveItem({ id, as = "div", children, ...rest }: LiveItemProps) {
  const { changes, ms } = useContext(LiveContext);
  return (
    <Highlight as={as} changeKey={changes.get(id)} {...(ms === undefined ? {} : { ms })} data-live-id={id} {...rest}>
      {children}
    </Highlight>
  );
}
