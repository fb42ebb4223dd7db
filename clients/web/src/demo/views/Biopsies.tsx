import { useState, type FormEvent } from "react";

import { typesOf, type Biopsy, type TypesOf } from "../../core";
import { Highlight, useHub, useLiveList, useToast } from "../../react";
import { fullName, loadList, useDirectory } from "../data";
import { label } from "../format";
import type { Session } from "../session";
import { useAction } from "./useAction";

export function BiopsyTracking({ session }: { session: Session }) {
  const hub = useHub();
  const act = useAction();
  const toast = useToast();
  const { patients, providers } = useDirectory();
  const [diagnosis, setDiagnosis] = useState("Malignant melanoma");
  const [concerning, setConcerning] = useState(true);
  const name = (id: string) => {
    const p = patients.find((x) => x.id === id);
    return p ? fullName(p) : id;
  };
  const list = useLiveList<Biopsy, TypesOf<"biopsy">>(typesOf("biopsy"), {
    load: () => loadList<Biopsy>(hub.api, "/biopsies", "biopsies"),
    onApplied: (e) => {
      if (e.type === "biopsy:result_received" && !e.data.concerning) toast({ title: "Biopsy result", body: `${name(e.patientId)}: ${e.data.diagnosis ?? ""}` });
    },
  });
  const order = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    void act(() => hub.api.post("/biopsies", { patientId: f.get("patient"), orderingProviderId: f.get("provider"), site: f.get("site") }));
  };
  return (
    <section>
      <h1>Biopsy tracking</h1>
      <form className="inline-form" onSubmit={order} aria-label="Order a biopsy">
        <select name="patient" aria-label="Patient" required>
          {patients.map((p) => <option key={p.id} value={p.id}>{fullName(p)}</option>)}
        </select>
        <select name="provider" aria-label="Ordering provider" defaultValue={session.user} required>
          {providers.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
        </select>
        <input name="site" aria-label="Site" defaultValue="Shave biopsy, left forearm" required />
        <button type="submit">Order biopsy</button>
      </form>
      <fieldset className="inline-form">
        <legend>Result to record</legend>
        <input aria-label="Diagnosis" value={diagnosis} onChange={(e) => setDiagnosis(e.target.value)} />
        <label><input type="checkbox" checked={concerning} onChange={(e) => setConcerning(e.target.checked)} /> Concerning</label>
      </fieldset>
      <table className="board" aria-label="Biopsies">
        <thead><tr><th>Patient</th><th>Site</th><th>Ordered by</th><th>Status</th><th>Diagnosis</th><th /></tr></thead>
        <tbody>
          {list.items.map((b) => (
            <Highlight as="tr" key={b.id} changeKey={list.changes.get(b.id)} data-biopsy={b.id} className={b.concerning ? "concerning" : undefined}>
              <td>{name(b.patientId)}</td>
              <td>{b.site}</td>
              <td>{b.orderingProviderId}</td>
              <td className="status">{label(b.status)}</td>
              <td>{b.diagnosis ?? ""}</td>
              <td className="actions">
                {["ordered", "collected", "sent"].includes(b.status) && (
                  <button type="button" onClick={() => act(() => hub.api.post(`/biopsies/${b.id}/result`, { diagnosis, concerning }))}>Record result</button>
                )}
                {b.status === "resulted" && b.orderingProviderId === session.user && (
                  <button type="button" onClick={() => act(() => hub.api.post(`/biopsies/${b.id}/review`))}>Review</button>
                )}
              </td>
            </Highlight>
          ))}
        </tbody>
      </table>
    </section>
  );
}
