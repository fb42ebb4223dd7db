// Per-user notifications (critical alerts). The same id is re-published when it is
// re-sent and when it is acknowledged, so a store keeps the newest version of each.

import type { DateTime, EventType, Id } from "./catalog";

export interface HubNotification {
  id: string;
  tenant: string;
  userId: Id;
  kind: "critical_result" | "claim_denied" | "prior_auth_denied" | "escalation";
  severity: "critical" | "alert";
  title: string;
  body: string;
  eventId: string;
  eventType: EventType;
  patientId: Id;
  entity: string;
  entityId: Id;
  escalationOf: string | null; // the alert an escalation is about
  createdAt: DateTime;
  updatedAt: DateTime;
  version: number;
  attempt: number;
  escalated: boolean;
  acknowledgedAt: DateTime | null;
  acknowledgedBy: Id | null;
}

export function isNotification(value: unknown): value is HubNotification {
  if (typeof value !== "object" || value === null) return false;
  const n = value as Record<string, unknown>;
  return typeof n.id === "string" && typeof n.version === "number" && typeof n.title === "string";
}

/** id -> newest state; a higher `version` wins, an equal or older one is ignored. */
export class NotificationStore {
  private readonly byId = new Map<string, HubNotification>();
  private listeners = new Set<() => void>();
  private snapshot: HubNotification[] = [];

  /** Returns true when the store changed. */
  put(n: HubNotification): boolean {
    const known = this.byId.get(n.id);
    if (known && known.version >= n.version) return false;
    this.byId.set(n.id, n);
    this.publish();
    return true;
  }

  /** Open (unacknowledged) notifications, newest first. The array is stable between changes. */
  open(): HubNotification[] {
    return this.snapshot;
  }

  get(id: string): HubNotification | undefined {
    return this.byId.get(id);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private publish(): void {
    this.snapshot = [...this.byId.values()]
      .filter((n) => n.acknowledgedAt === null)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    for (const listener of this.listeners) listener();
  }
}
