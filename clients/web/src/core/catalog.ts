// The hub's event catalog (docs/events.md, hub/catalog.py) as TypeScript types: the
// envelope, one payload type per entity, and a map from event type to payload.

export type Id = string;
/** ISO 8601 date-time in UTC with a `Z` suffix. */
export type DateTime = string;

export type AppointmentStatus =
  | "scheduled" | "confirmed" | "checked_in" | "in_room" | "completed" | "cancelled" | "no_show";

export interface Appointment {
  id: Id;
  patientId: Id;
  patientName: string;
  providerId: Id;
  providerName: string;
  locationId: Id;
  locationName: string | null;
  scheduledStart: DateTime;
  scheduledEnd: DateTime;
  status: AppointmentStatus;
  reason: string | null;
  previousStatus: AppointmentStatus | null;
  previousScheduledStart: DateTime | null;
  previousScheduledEnd: DateTime | null;
  cancelReason: string | null;
  /** Set when a patient checked in at a kiosk (the event's actor is the kiosk's id). */
  kioskName?: string | null;
}

export interface PatientUpdated {
  id: Id;
  firstName: string;
  lastName: string;
  dateOfBirth: string;
  sex: string | null;
  phone: string | null;
  email: string | null;
  changedFields: string[];
}

export interface InsuranceVerified {
  patientId: Id;
  payerId: Id;
  memberId: string;
  eligible: boolean;
  verifiedAt: DateTime;
}

export interface BalanceChanged {
  patientId: Id;
  balanceCents: number;
  previousBalanceCents: number;
  reason: string;
}

export interface Encounter {
  id: Id;
  patientId: Id;
  providerId: Id;
  appointmentId: Id | null;
  status: "open" | "completed" | "signed";
  chiefComplaint: string | null;
  assessment: string | null;
  plan: string | null;
  changedFields: string[];
  completedAt: DateTime | null;
  signedAt: DateTime | null;
  signedBy: Id | null;
}

export type BiopsyStatus = "ordered" | "collected" | "sent" | "resulted" | "reviewed" | "cancelled";

export interface Biopsy {
  id: Id;
  patientId: Id;
  orderingProviderId: Id;
  encounterId: Id | null;
  site: string;
  status: BiopsyStatus;
  previousStatus: BiopsyStatus | null;
  diagnosis: string | null;
  concerning: boolean | null;
  critical: boolean;
  resultedAt: DateTime | null;
  reviewedAt: DateTime | null;
  reviewedBy: Id | null;
}

export type ClaimStatus =
  | "draft" | "submitted" | "accepted" | "pending" | "denied" | "paid" | "adjusted" | "void";

export interface Claim {
  id: Id;
  patientId: Id;
  payerId: Id;
  encounterId: Id | null;
  amountCents: number;
  status: ClaimStatus;
  previousStatus: ClaimStatus | null;
  reason: string | null;
  paidAmountCents: number | null;
  patientResponsibilityCents: number;
  submittedAt: DateTime | null;
}

/** A critical result stayed unacknowledged: the hub alerted the tenant's admins. */
export interface BiopsyEscalated {
  id: Id; // the biopsy
  patientId: Id;
  orderingProviderId: Id;
  notificationId: string;
  escalatedTo: Id[];
  unacknowledgedSince: DateTime;
  attempts: number;
}

export interface Payment {
  id: Id;
  patientId: Id;
  amountCents: number;
  method: string;
  claimId: Id | null;
  balanceCents: number;
}

export type PriorAuthStatus = "requested" | "pending" | "approved" | "denied" | "cancelled";

export interface PriorAuth {
  id: Id;
  patientId: Id;
  payerId: Id;
  item: string;
  status: PriorAuthStatus;
  previousStatus: PriorAuthStatus | null;
  reason: string | null;
  requestedBy: Id | null;
}

/** Every event type of the catalog and the payload it carries. */
export interface EventPayloads {
  "appointment:created": Appointment;
  "appointment:updated": Appointment;
  "appointment:cancelled": Appointment;
  "appointment:checkedin": Appointment;
  "patient:updated": PatientUpdated;
  "patient:insurance_verified": InsuranceVerified;
  "patient:balance_changed": BalanceChanged;
  "encounter:created": Encounter;
  "encounter:updated": Encounter;
  "encounter:completed": Encounter;
  "encounter:signed": Encounter;
  "biopsy:created": Biopsy;
  "biopsy:updated": Biopsy;
  "biopsy:result_received": Biopsy;
  "biopsy:reviewed": Biopsy;
  "biopsy:escalated": BiopsyEscalated;
  "claim:created": Claim;
  "claim:updated": Claim;
  "claim:status_changed": Claim;
  "claim:submitted": Claim;
  "claim:denied": Claim;
  "claim:paid": Claim;
  "payment:received": Payment;
  "prior_auth:status_changed": PriorAuth;
  "prior_auth:approved": PriorAuth;
  "prior_auth:denied": PriorAuth;
}

export type EventType = keyof EventPayloads;
export type Entity = EventType extends `${infer E}:${string}` ? E : never;
export type TypesOf<E extends Entity> = Extract<EventType, `${E}:${string}`>;

/** The envelope of one event (contract section 4), typed by its `type`. */
export type HubEvent<T extends EventType = EventType> = {
  [K in T]: {
    id: string;
    type: K;
    tenant: string;
    seq: number;
    occurredAt: DateTime;
    actor: string;
    patientId: Id;
    entityId: Id;
    data: EventPayloads[K];
    /** The broker client id of the connection whose write made it (the api's extension,
     * docs/events.md); absent when the write named none (seed, kiosk, escalation). */
    origin?: string;
  };
}[T];

/** Per entity, the actions whose data is the entity's record (what a list applies). */
const ENTITY_ACTIONS: { [E in Entity]: readonly string[] } = {
  appointment: ["created", "updated", "cancelled", "checkedin"],
  patient: ["updated", "insurance_verified", "balance_changed"],
  encounter: ["created", "updated", "completed", "signed"],
  biopsy: ["created", "updated", "result_received", "reviewed"],
  claim: ["created", "updated", "status_changed", "submitted", "denied", "paid"],
  payment: ["received"],
  prior_auth: ["status_changed", "approved", "denied"],
};

/** Events about an entity whose data is not its record: subscribe to them by name. */
const NOT_RECORDS: readonly EventType[] = ["biopsy:escalated"];

export const EVENT_TYPES: readonly EventType[] = [
  ...Object.entries(ENTITY_ACTIONS).flatMap(([entity, actions]) =>
    actions.map((action) => `${entity}:${action}` as EventType),
  ),
  ...NOT_RECORDS,
];

/** The types whose data is the entity's record; `biopsy:escalated` is not among them. */
export function typesOf<E extends Entity>(entity: E): TypesOf<E>[] {
  return ENTITY_ACTIONS[entity].map((action) => `${entity}:${action}` as TypesOf<E>);
}

export function isEventType(value: unknown): value is EventType {
  return typeof value === "string" && (EVENT_TYPES as readonly string[]).includes(value);
}

export function splitType(type: EventType): { entity: Entity; action: string } {
  const at = type.indexOf(":");
  return { entity: type.slice(0, at) as Entity, action: type.slice(at + 1) };
}

/** Narrow a received payload to an envelope of a known type; anything else is refused. */
export function parseEnvelope(value: unknown): HubEvent | null {
  if (typeof value !== "object" || value === null) return null;
  const e = value as Record<string, unknown>;
  if (
    typeof e.id !== "string" || !isEventType(e.type) || typeof e.seq !== "number" ||
    typeof e.patientId !== "string" || typeof e.entityId !== "string" ||
    typeof e.data !== "object" || e.data === null
  ) {
    return null;
  }
  return value as HubEvent;
}
