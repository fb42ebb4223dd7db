// React bindings: what an app imports from "@hub/web/react".
export { HubProvider, useHub, useHubReady, useHubStatus, type HubProviderProps } from "./context";
export {
  BILLING_TYPES,
  useAppointmentUpdates,
  useBillingUpdates,
  useBiopsyUpdates,
  useEncounterUpdates,
  useEventToasts,
  useHubEvents,
  useHubQuery,
  useNotifications,
  usePatientUpdates,
  type BillingType,
  type Query,
  type UpdateOptions,
} from "./hooks";
export { applyToList, useLiveList, type LiveList, type LiveListOptions } from "./liveList";
export { CriticalAlerts } from "./components/CriticalAlerts";
export { Highlight, useHighlight, type HighlightProps } from "./components/Highlight";
export { LiveIndicator } from "./components/LiveIndicator";
export {
  LiveItem,
  RealtimeWrapper,
  useLiveChange,
  type Changes,
  type LiveItemProps,
  type RealtimeWrapperProps,
} from "./components/RealtimeWrapper";
export { ToastProvider, useToast, type Toast, type ToastTone } from "./components/Toasts";
export { TOAST_TEXT, toastFor, toastUnlessOwn } from "./toastText";
