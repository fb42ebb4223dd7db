// The framework-free core: what an app imports from "@hub/web/core".
export { ApiError, CONNECTION_HEADER, HubApi, type ApiOptions, type Credentials, type EventPage, type TokenSource } from "./api";
export * from "./catalog";
export { HubClient, type ConnectFn, type ConnectionStatus, type HubClientOptions, type SubscribeOptions } from "./client";
export { EventLedger } from "./ledger";
export { NotificationStore, type HubNotification } from "./notifications";
export { backoffDelay, renewalDelay, type Backoff } from "./timing";
export { eventTopic, filtersFor, matches, type Selector } from "./topics";
