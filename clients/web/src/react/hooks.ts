// Event hooks as a clinic front end uses them: one per domain, with a handler and
// optional filters, plus data loading that stays correct across reconnects.

import { useCallback, useEffect, useEffectEvent, useState, useSyncExternalStore } from "react";

import { typesOf, type EventType, type HubEvent, type TypesOf } from "../core/catalog";
import type { HubNotification } from "../core/notifications";
import { useOptionalToast } from "./components/Toasts";
import { useHub } from "./context";
import { toastUnlessOwn } from "./toastText";

export interface UpdateOptions<T extends EventType> {
  /** Only this patient's events (one topic subtree, so the broker filters). */
  patientId?: string | undefined;
  /** Only these types (default: every type of the domain; an empty list is refused). */
  types?: readonly T[];
  /** The client missed more than it can replay: reload what the component shows. */
  onRefetch?: () => void;
  /** Skip subscribing (for example until an id is known). */
  enabled?: boolean;
  /** Toast each event (TOAST_TEXT) unless this window made it; needs a ToastProvider. */
  showToasts?: boolean;
}

/** A function that toasts an event unless this window made it (its origin is one of
 * this client's connections): another window's change toasts, even the same user's. */
export function useEventToasts(enabled = true): (event: HubEvent) => void {
  const hub = useHub();
  const push = useOptionalToast();
  if (enabled && !push) throw new Error("showToasts needs a <ToastProvider> around the component");
  return useCallback(
    (event: HubEvent) => {
      if (!enabled || !push) return;
      const toast = toastUnlessOwn(event, (e) => hub.isOwn(e));
      if (toast) push(toast);
    },
    [enabled, push, hub],
  );
}

/** Calls `handler` with each new event of `types`. The handler may change on every
 * render; the subscription changes only with the types or the patient. */
export function useHubEvents<T extends EventType>(
  types: readonly T[],
  handler: (event: HubEvent<T>) => void,
  options: Omit<UpdateOptions<T>, "types"> = {},
): void {
  const hub = useHub();
  const toast = useEventToasts(options.showToasts ?? false);
  const onEvent = useEffectEvent((event: HubEvent) => {
    handler(event as HubEvent<T>);
    toast(event);
  });
  const onRefetch = useEffectEvent(() => options.onRefetch?.());
  const key = types.join(",");
  const { patientId, enabled = true } = options;
  useEffect(() => {
    if (!enabled) return;
    return hub.subscribe(
      // "".split(",") is [""]: an empty list must reach the core as one (a clear error).
      { types: (key ? key.split(",") : []) as EventType[], ...(patientId ? { patientId } : {}) },
      (event) => onEvent(event),
      { onRefetch: () => onRefetch() },
    );
  }, [hub, key, patientId, enabled]);
}

function domainHook<T extends EventType>(all: readonly T[]) {
  return (handler: (event: HubEvent<T>) => void, options: UpdateOptions<T> = {}) =>
    useHubEvents(options.types ?? all, handler, options);
}

export const useAppointmentUpdates = domainHook(typesOf("appointment"));
export const usePatientUpdates = domainHook(typesOf("patient"));
export const useEncounterUpdates = domainHook(typesOf("encounter"));
export const useBiopsyUpdates = domainHook(typesOf("biopsy"));

export type BillingType = TypesOf<"claim"> | TypesOf<"payment"> | TypesOf<"prior_auth"> | "patient:balance_changed";
export const BILLING_TYPES: readonly BillingType[] = [
  ...typesOf("claim"), ...typesOf("payment"), ...typesOf("prior_auth"), "patient:balance_changed",
];
export const useBillingUpdates = domainHook(BILLING_TYPES);

export interface Query<T> {
  data: T | undefined;
  error: Error | undefined;
  reload: () => void;
}

/** Loads data once the client has its replay baseline (so nothing committed between the
 * load and the connection is lost), and again whenever `deps` (ids, compared as
 * strings) change or `reload` runs. */
export function useHubQuery<T>(load: () => Promise<T>, deps: readonly (string | number | undefined)[]): Query<T> {
  const hub = useHub();
  const [state, setState] = useState<{ data?: T; error?: Error }>({});
  const [round, setRound] = useState(0);
  const loader = useEffectEvent(load);
  const key = deps.join("\u0000");
  useEffect(() => {
    let alive = true;
    hub
      .ready()
      .then(() => loader())
      .then(
        (data) => alive && setState({ data }),
        (error: Error) => alive && setState((s) => ({ ...s, error })),
      );
    return () => {
      alive = false;
    };
  }, [hub, round, key]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { data: state.data, error: state.error, reload };
}

/** The signed-in user's open notifications (critical alerts), newest first. */
export function useNotifications(): { open: HubNotification[]; acknowledge: (id: string) => Promise<HubNotification> } {
  const hub = useHub();
  const open = useSyncExternalStore(
    (cb) => hub.notifications.subscribe(cb),
    () => hub.notifications.open(),
  );
  const acknowledge = useCallback((id: string) => hub.acknowledge(id), [hub]);
  return { open, acknowledge };
}
