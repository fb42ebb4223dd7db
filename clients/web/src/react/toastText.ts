// What a toast says about each event type of the catalog. A toast shows over whatever
// screen is open, so it says no more than the views already show: a patient's name and
// a time on appointment events (the schedule shows both), amounts and statuses on
// billing events; never a diagnosis, a biopsy site, a chart note, a denial reason or
// an authorized item. The views hold the details.

import type { EventType, HubEvent } from "../core/catalog";
import type { Toast } from "./components/Toasts";

type Texts = { [T in EventType]: (event: HubEvent<T>) => Toast };

const time = (iso: string) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const money = (cents: number | null) =>
  cents === null ? "" : (cents / 100).toLocaleString("en-US", { style: "currency", currency: "USD" });
const status = (s: string) => s.replace(/_/g, " ");
const visit = (e: HubEvent<"appointment:created">["data"]) => `${e.patientName} · ${time(e.scheduledStart)}`;

/** One entry per catalog type: the type checker refuses a missing one, and a unit test
 * checks the list against the catalog the hub publishes. */
export const TOAST_TEXT: Texts = {
  "appointment:created": (e) => ({ title: "New appointment", body: visit(e.data) }),
  "appointment:updated": (e) => ({ title: "Appointment changed", body: visit(e.data) }),
  "appointment:cancelled": (e) => ({ title: "Appointment cancelled", body: visit(e.data), tone: "warning" }),
  "appointment:checkedin": (e) =>
    e.data.kioskName
      ? { title: "Checked in at the kiosk", body: `${e.data.patientName} · ${e.data.kioskName}`, tone: "success" }
      : { title: "Patient checked in", body: visit(e.data), tone: "success" },
  "patient:updated": (e) => ({ title: "Demographics updated", body: `${e.data.firstName} ${e.data.lastName}` }),
  "patient:insurance_verified": (e) => ({
    title: e.data.eligible ? "Insurance verified" : "Insurance not eligible",
    tone: e.data.eligible ? "success" : "warning",
  }),
  "patient:balance_changed": (e) => ({ title: "Balance changed", body: money(e.data.balanceCents) }),
  "encounter:created": () => ({ title: "Encounter opened" }),
  "encounter:updated": () => ({ title: "Encounter updated" }),
  "encounter:completed": () => ({ title: "Encounter completed", tone: "success" }),
  "encounter:signed": () => ({ title: "Encounter signed", tone: "success" }),
  "biopsy:created": () => ({ title: "Biopsy ordered" }),
  "biopsy:updated": (e) => ({ title: "Biopsy updated", body: status(e.data.status) }),
  // The result itself stays in the chart (and a concerning one in CriticalAlerts).
  "biopsy:result_received": (e) => ({ title: "Biopsy result received", tone: e.data.critical ? "warning" : "info" }),
  "biopsy:reviewed": () => ({ title: "Biopsy result reviewed", tone: "success" }),
  "biopsy:escalated": () => ({ title: "Unreviewed result escalated", tone: "warning" }),
  "claim:created": (e) => ({ title: "Claim created", body: money(e.data.amountCents) }),
  "claim:updated": (e) => ({ title: "Claim updated", body: money(e.data.amountCents) }),
  "claim:status_changed": (e) => ({ title: "Claim status changed", body: status(e.data.status) }),
  "claim:submitted": (e) => ({ title: "Claim submitted", body: money(e.data.amountCents) }),
  "claim:denied": (e) => ({ title: "Claim denied", body: money(e.data.amountCents), tone: "error" }),
  "claim:paid": (e) => ({ title: "Claim paid", body: money(e.data.paidAmountCents), tone: "success" }),
  "payment:received": (e) => ({ title: "Payment received", body: money(e.data.amountCents), tone: "success" }),
  "prior_auth:status_changed": (e) => ({ title: "Prior authorization updated", body: status(e.data.status) }),
  "prior_auth:approved": () => ({ title: "Prior authorization approved", tone: "success" }),
  "prior_auth:denied": () => ({ title: "Prior authorization denied", tone: "error" }),
};

/** The toast for `event`, or null for a type this client does not know (a newer hub). */
export function toastFor(event: HubEvent): Toast | null {
  const text = (TOAST_TEXT as Record<string, ((e: HubEvent) => Toast) | undefined>)[event.type];
  return text ? text(event) : null;
}

/** The toast a window shows for `event`: none for its own change (the event's origin is
 * one of this window's connections, `HubClient.isOwn`), whoever the user; another
 * window's change, even the same user's, does toast. */
export function toastUnlessOwn(event: HubEvent, isOwn: (event: HubEvent) => boolean): Toast | null {
  return isOwn(event) ? null : toastFor(event);
}
