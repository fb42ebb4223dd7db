import { useState, type FormEvent } from "react";

import { typesOf, type Appointment, type TypesOf } from "../../core";
import { Highlight, useHub, useLiveList, useToast } from "../../react";
import { fullName, useDirectory } from "../data";
import { label, localDay, time } from "../format";
import { useAction } from "./useAction";

const VERBS: Record<TypesOf<"appointment">, string> = {
  "appointment:created": "New appointment",
  "appointment:updated": "Appointment changed",
  "appointment:cancelled": "Appointment cancelled",
  "appointment:checkedin": "Patient checked in",
};

const isToday = (iso: string) => localDay(new Date(iso)) === localDay(new Date());

export function Schedule() {
  const hub = useHub();
  const toast = useToast();
  const act = useAction();
  const day = localDay(new Date());
  const list = useLiveList<Appointment, TypesOf<"appointment">>(typesOf("appointment"), {
    load: () => hub.api.get<Appointment[]>(`/appointments?date=${day}`),
    // An appointment moved to another day leaves today's schedule.
    removes: (e) => !isToday(e.data.scheduledStart),
    onApplied: (e) => {
      if (hub.isOwn(e)) return; // this window's change; another window's, even ours, toasts
      // A kiosk check-in names its kiosk (the event's actor is the kiosk's id).
      if (e.type === "appointment:checkedin" && e.data.kioskName) {
        toast({ title: "Checked in at the kiosk", body: `${e.data.patientName} · ${e.data.kioskName}`, tone: "success" });
      } else {
        toast({ title: VERBS[e.type], body: `${e.data.patientName} · ${time(e.data.scheduledStart)}` });
      }
    },
    deps: [day],
  });
  const rows = [...list.items].sort((a, b) => a.scheduledStart.localeCompare(b.scheduledStart));
  const status = (a: Appointment, to: string) => act(() => hub.api.post(`/appointments/${a.id}/status`, { status: to }));
  const later = (a: Appointment) =>
    act(() =>
      hub.api.post(`/appointments/${a.id}/reschedule`, {
        scheduledStart: new Date(Date.parse(a.scheduledStart) + 30 * 60_000).toISOString(),
        scheduledEnd: new Date(Date.parse(a.scheduledEnd) + 30 * 60_000).toISOString(),
      }),
    );
  return (
    <section>
      <h1>Today&apos;s schedule</h1>
      <BookForm />
      {list.error && <p className="error">Could not load the schedule: {list.error.message}</p>}
      <table className="board" aria-label="Schedule">
        <thead>
          <tr>
            <th>Time</th><th>Patient</th><th>Provider</th><th>Location</th><th>Status</th><th />
          </tr>
        </thead>
        <tbody>
          {rows.map((a) => (
            <Highlight as="tr" key={a.id} changeKey={list.changes.get(a.id)} className={`status-${a.status}`} data-appointment={a.id}>
              <td>{time(a.scheduledStart)}</td>
              <td><a href={`#/patients/${a.patientId}`}>{a.patientName}</a></td>
              <td>{a.providerName}</td>
              <td>{a.locationName ?? a.locationId}</td>
              <td className="status">{label(a.status)}</td>
              <td className="actions">
                {(a.status === "scheduled" || a.status === "confirmed") && (
                  <>
                    <button type="button" onClick={() => status(a, "checked_in")}>Check in</button>
                    <button type="button" onClick={() => later(a)}>+30 min</button>
                    <button type="button" onClick={() => status(a, "cancelled")}>Cancel</button>
                  </>
                )}
              </td>
            </Highlight>
          ))}
        </tbody>
      </table>
      {!list.loading && rows.length === 0 && <p>No appointments today.</p>}
    </section>
  );
}

function BookForm() {
  const hub = useHub();
  const act = useAction();
  const { patients, providers, locations } = useDirectory();
  const [at, setAt] = useState("");
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const [h, m] = String(form.get("time")).split(":").map(Number);
    const start = new Date();
    start.setHours(h ?? 9, m ?? 0, 0, 0);
    void act(() =>
      hub.api.post("/appointments", {
        patientId: form.get("patient"),
        providerId: form.get("provider"),
        locationId: form.get("location"),
        scheduledStart: start.toISOString(),
        scheduledEnd: new Date(start.getTime() + 30 * 60_000).toISOString(),
        reason: form.get("reason") || null,
      }),
    );
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Book an appointment">
      <select name="patient" aria-label="Patient" required>
        {patients.map((p) => <option key={p.id} value={p.id}>{fullName(p)}</option>)}
      </select>
      <select name="provider" aria-label="Provider" required>
        {providers.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
      </select>
      <select name="location" aria-label="Location" required>
        {locations.map((l) => <option key={l.id} value={l.id}>{l.name}</option>)}
      </select>
      <input name="time" type="time" aria-label="Time" required value={at} onChange={(e) => setAt(e.target.value)} />
      <input name="reason" aria-label="Reason" placeholder="Reason" maxLength={500} />
      <button type="submit">Book</button>
    </form>
  );
}
