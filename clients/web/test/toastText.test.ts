import { describe, expect, it } from "vitest";

import { EVENT_TYPES, type EventType, type HubEvent } from "../src/core/catalog";
import { TOAST_TEXT, toastFor, toastUnlessOwn } from "../src/react/toastText";
import { appointmentEvent } from "./fakes";

// Payloads with every field a toast could read, and clinical details a toast must never show.
const DIAGNOSIS = "Melanoma in situ";
const SITE = "left upper back";
const DATA: Record<string, unknown> = {
  appointment: appointmentEvent(1).data,
  patient: { id: "p-1", firstName: "Ada", lastName: "Lovelace", dateOfBirth: "1985-12-10", sex: null, phone: null,
    email: null, changedFields: ["phone"], patientId: "p-1", payerId: "py-1", memberId: "M-1", eligible: true,
    verifiedAt: "2026-11-26T09:00:00Z", balanceCents: 2500, previousBalanceCents: 0, reason: "payment" },
  encounter: { id: "e-1", patientId: "p-1", providerId: "dr-1", appointmentId: null, status: "open",
    chiefComplaint: "changing mole", assessment: DIAGNOSIS, plan: "excision", changedFields: [], completedAt: null,
    signedAt: null, signedBy: null },
  biopsy: { id: "b-1", patientId: "p-1", orderingProviderId: "dr-1", encounterId: null, site: SITE, status: "resulted",
    previousStatus: "sent", diagnosis: DIAGNOSIS, concerning: true, critical: true, resultedAt: null, reviewedAt: null,
    reviewedBy: null, notificationId: "n-1", escalatedTo: ["ad-1"], unacknowledgedSince: "2026-11-26T09:00:00Z", attempts: 2 },
  claim: { id: "c-1", patientId: "p-1", payerId: "py-1", encounterId: null, amountCents: 12000, status: "denied",
    previousStatus: "submitted", reason: DIAGNOSIS, paidAmountCents: 9000, patientResponsibilityCents: 0, submittedAt: null },
  payment: { id: "pm-1", patientId: "p-1", amountCents: 2500, method: "card", claimId: null, balanceCents: 0 },
  prior_auth: { id: "pa-1", patientId: "p-1", payerId: "py-1", item: "Mohs surgery", status: "denied",
    previousStatus: "pending", reason: DIAGNOSIS, requestedBy: "dr-1" },
};

function event(type: EventType, overrides: Partial<HubEvent> = {}): HubEvent {
  const entity = type.slice(0, type.indexOf(":"));
  return { ...appointmentEvent(7), type, data: DATA[entity], ...overrides } as HubEvent;
}

describe("toast texts", () => {
  it("has a text for every type of the catalog (kept in step with hub/catalog.py)", () => {
    expect(Object.keys(TOAST_TEXT).sort()).toEqual([...EVENT_TYPES].sort());
    for (const type of EVENT_TYPES) {
      const toast = toastFor(event(type));
      expect(toast, type).not.toBeNull();
      expect(toast!.title.length, type).toBeGreaterThan(0);
    }
  });

  it("never carries a diagnosis, a biopsy site, a chart note, a reason or an authorized item", () => {
    for (const type of EVENT_TYPES) {
      const text = JSON.stringify(toastFor(event(type)));
      for (const secret of [DIAGNOSIS, SITE, "changing mole", "excision", "Mohs surgery", "1985-12-10"]) {
        expect(text, `${type} shows ${secret}`).not.toContain(secret);
      }
    }
  });

  it("names the patient and the time on appointment events, as the schedule does", () => {
    expect(toastFor(event("appointment:created"))).toMatchObject({ title: "New appointment" });
    expect(toastFor(event("appointment:created"))!.body).toContain("Ada Lovelace");
    const kiosk = event("appointment:checkedin", { data: { ...appointmentEvent(1).data, kioskName: "Lobby" } } as Partial<HubEvent>);
    expect(toastFor(kiosk)).toMatchObject({ title: "Checked in at the kiosk", tone: "success" });
  });

  it("has none for a type this client does not know", () => {
    expect(toastFor({ ...event("appointment:created"), type: "lab:new" } as unknown as HubEvent)).toBeNull();
  });
});

describe("toasts and the window that made the change", () => {
  const mine = new Set(["acme.fd-1.aaaa0001"]);
  const isOwn = (e: HubEvent) => e.origin !== undefined && mine.has(e.origin);

  it("are not shown for the window's own change", () => {
    expect(toastUnlessOwn(event("appointment:created", { origin: "acme.fd-1.aaaa0001" }), isOwn)).toBeNull();
  });

  it("are shown for another window of the same user, and for changes without an origin", () => {
    const sameUser = event("appointment:created", { actor: "fd-1", origin: "acme.fd-1.bbbb0002" });
    expect(toastUnlessOwn(sameUser, isOwn)).toMatchObject({ title: "New appointment" });
    expect(toastUnlessOwn(event("appointment:created", { actor: "fd-1" }), isOwn)).not.toBeNull();
  });
});
