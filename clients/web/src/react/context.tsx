// The provider that owns one HubClient per signed-in user, and the hooks to reach it.

import { createContext, useContext, useEffect, useState, useSyncExternalStore, type ReactNode } from "react";

import type { ConnectionStatus, HubClient } from "../core/client";

const HubContext = createContext<HubClient | null>(null);

export interface HubProviderProps {
  /** A client made for this user; the provider starts it and stops it on unmount. */
  client: HubClient;
  children: ReactNode;
}

export function HubProvider({ client, children }: HubProviderProps) {
  useEffect(() => {
    void client.start().catch(() => undefined); // failures show as status and onAuthLost
    return () => client.stop();
  }, [client]);
  return <HubContext.Provider value={client}>{children}</HubContext.Provider>;
}

export function useHub(): HubClient {
  const hub = useContext(HubContext);
  if (!hub) throw new Error("useHub must be used inside <HubProvider>");
  return hub;
}

/** connecting, live, reconnecting or offline; re-renders on every change. */
export function useHubStatus(): ConnectionStatus {
  const hub = useHub();
  return useSyncExternalStore(
    (cb) => hub.onStatus(cb),
    () => hub.status,
  );
}

/** True once the client has its first credentials (and so its replay baseline). */
export function useHubReady(): boolean {
  const hub = useHub();
  const [ready, setReady] = useState(false);
  useEffect(() => {
    let alive = true;
    hub.ready().then(() => alive && setReady(true), () => undefined);
    return () => {
      alive = false;
    };
  }, [hub]);
  return ready;
}
