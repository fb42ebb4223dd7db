import { useState, type FormEvent } from "react";

import { typesOf, type Biopsy, type Encounter, type TypesOf } from "../../core";
import { Highlight, useHub, useHubQuery, useLiveList, usePatientUpdates, useToast } from "../../react";
import { fullName, loadList, type Patient } from "../data";
import { label, money } from "../format";
import type { Session } from "../session";
import { useAction } from "./useAction";

export function PatientList() {
  const hub = useHub();
  const [q, setQ] = useState("");
  const { data = [] } = useHubQuery(() => hub.api.get<Patient[]>(`/patients?limit=100${q ? `&q=${encodeURIComponent(q)}` : ""}`), [q]);
  return (
    <section>
      <h1>Patients</h1>
      <input aria-label="Search patients" placeholder="Last name" value={q} onChange={(e) => setQ(e.target.value)} />
      <ul className="plain">
        {data.map((p) => (
          <li key={p.id}><a href={`#/patients/${p.id}`}>{p.lastName}, {p.firstName}</a> <small>{p.dateOfBirth}</small></li>
        ))}
      </ul>
    </section>
  );
}

interface Insurance {
  payerId: string;
  memberId: string;
  eligible: boolean;
}

export function PatientChart({ patientId, session }: { patientId: string; session: Session }) {
  const hub = useHub();
  const toast = useToast();
  const act = useAction();
  const chart = useHubQuery(() => hub.api.get<Patient>(`/patients/${patientId}`), [patientId]);
  const [live, setLive] = useState<{ patient?: Partial<Patient>; insurance?: Insurance; seq?: number; balanceSeq?: number }>({});
  usePatientUpdates(
    (e) => {
      if (e.type === "patient:updated") {
        const { firstName, lastName, dateOfBirth } = e.data;
        setLive((s) => ({ ...s, patient: { ...s.patient, firstName, lastName, dateOfBirth }, seq: e.seq }));
        if (!hub.isOwn(e)) toast({ title: "Demographics updated", body: `${firstName} ${lastName}` });
      } else if (e.type === "patient:balance_changed") {
        setLive((s) => ({ ...s, patient: { ...s.patient, balanceCents: e.data.balanceCents }, balanceSeq: e.seq }));
      } else {
        setLive((s) => ({ ...s, insurance: e.data, seq: e.seq }));
      }
    },
    { patientId, onRefetch: () => { setLive({}); chart.reload(); } },
  );
  if (chart.error) return <p className="error">Could not load the patient: {chart.error.message}</p>;
  if (!chart.data) return <p>Loading…</p>;
  const patient = { ...chart.data, ...live.patient };
  return (
    <section>
      <h1>{fullName(patient)}</h1>
      <div className="cards">
        <Highlight className="card" changeKey={live.seq} aria-label="Demographics">
          <h2>Demographics</h2>
          <dl>
            <dt>Name</dt><dd data-field="name">{fullName(patient)}</dd>
            <dt>Date of birth</dt><dd data-field="dateOfBirth">{patient.dateOfBirth}</dd>
            <dt>Phone</dt><dd>{patient.phone ?? "—"}</dd>
            {live.insurance && (<><dt>Insurance</dt><dd>{live.insurance.payerId} · {live.insurance.memberId} · {live.insurance.eligible ? "eligible" : "not eligible"}</dd></>)}
          </dl>
          <DemographicsForm patient={patient} onSave={(body) => act(() => hub.api.request("PUT", `/patients/${patientId}`, body))} />
          <button type="button" onClick={() => act(() => hub.api.post(`/patients/${patientId}/insurance/verify`, { payerId: "payer-acme", memberId: "M-1001" }))}>
            Verify insurance
          </button>
        </Highlight>
        <Highlight className="card" changeKey={live.balanceSeq} aria-label="Balance">
          <h2>Balance</h2>
          <p className="big" data-field="balance">{money(patient.balanceCents)}</p>
          <PaymentForm patientId={patientId} />
        </Highlight>
      </div>
      <Encounters patientId={patientId} session={session} />
      <Biopsies patientId={patientId} />
    </section>
  );
}

function DemographicsForm({ patient, onSave }: { patient: Patient; onSave: (body: unknown) => void }) {
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    onSave({
      firstName: f.get("firstName"), lastName: f.get("lastName"), dateOfBirth: f.get("dateOfBirth"),
      phone: f.get("phone") || null,
    });
  };
  return (
    <form className="stack-form" onSubmit={submit} aria-label="Edit demographics" key={patient.version}>
      <input name="firstName" aria-label="First name" defaultValue={patient.firstName} required />
      <input name="lastName" aria-label="Last name" defaultValue={patient.lastName} required />
      <input name="dateOfBirth" aria-label="Date of birth" type="date" defaultValue={patient.dateOfBirth} required />
      <input name="phone" aria-label="Phone" placeholder="Phone" defaultValue={patient.phone ?? ""} />
      <button type="submit">Save demographics</button>
    </form>
  );
}

export function PaymentForm({ patientId }: { patientId: string }) {
  const hub = useHub();
  const act = useAction();
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    void act(() => hub.api.post("/payments", { patientId, amountCents: Math.round(Number(f.get("amount")) * 100), method: f.get("method") }));
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Record a payment">
      <input name="amount" aria-label="Amount" placeholder="Amount ($)" type="number" min="0.01" step="0.01" required />
      <select name="method" aria-label="Method"><option>card</option><option>cash</option><option>check</option></select>
      <button type="submit">Record payment</button>
    </form>
  );
}

function Encounters({ patientId, session }: { patientId: string; session: Session }) {
  const hub = useHub();
  const act = useAction();
  const list = useLiveList<Encounter, TypesOf<"encounter">>(typesOf("encounter"), {
    load: () => loadList<Encounter>(hub.api, `/encounters?patientId=${patientId}`, "encounters"),
    patientId,
  });
  const isProvider = session.roles.includes("provider");
  return (
    <section>
      <h2>Encounters</h2>
      {isProvider && (
        <button type="button" onClick={() => act(() => hub.api.post("/encounters", { patientId, providerId: session.user }))}>Start encounter</button>
      )}
      <ul className="plain">
        {list.items.map((enc) => (
          <Highlight as="li" key={enc.id} changeKey={list.changes.get(enc.id)}>
            {enc.chiefComplaint ?? "Encounter"} · {label(enc.status)} · {enc.providerId}{" "}
            {enc.status === "open" && <button type="button" onClick={() => act(() => hub.api.post(`/encounters/${enc.id}/complete`))}>Complete</button>}
            {enc.status === "completed" && enc.providerId === session.user && (
              <button type="button" onClick={() => act(() => hub.api.post(`/encounters/${enc.id}/sign`))}>Sign</button>
            )}
          </Highlight>
        ))}
      </ul>
    </section>
  );
}

function Biopsies({ patientId }: { patientId: string }) {
  const hub = useHub();
  const list = useLiveList<Biopsy, TypesOf<"biopsy">>(typesOf("biopsy"), {
    load: () => loadList<Biopsy>(hub.api, `/biopsies?patientId=${patientId}`, "biopsies"),
    patientId,
  });
  return (
    <section>
      <h2>Biopsies</h2>
      <ul className="plain">
        {list.items.map((b) => (
          <Highlight as="li" key={b.id} changeKey={list.changes.get(b.id)}>
            {b.site} · {label(b.status)}{b.diagnosis ? ` · ${b.diagnosis}` : ""}{b.concerning ? " · concerning" : ""}
          </Highlight>
        ))}
      </ul>
    </section>
  );
}
