import type { ConnectionStatus } from "../../core/client";
import { useHubStatus } from "../context";

const LABELS: Record<ConnectionStatus, string> = {
  connecting: "Connecting",
  live: "Live",
  reconnecting: "Reconnecting",
  offline: "Offline",
};

/** A pulsing "Live" while connected; "Reconnecting" and "Offline" otherwise. */
export function LiveIndicator() {
  const status = useHubStatus();
  return (
    <span className={`hub-indicator hub-indicator--${status}`} role="status" aria-live="polite" data-status={status}>
      <span className="hub-indicator__dot" aria-hidden="true" />
      {LABELS[status]}
    </span>
  );
}
