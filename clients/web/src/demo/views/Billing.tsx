import { useState, type FormEvent } from "react";

import { typesOf, type Claim, type Payment, type PriorAuth, type TypesOf } from "../../core";
import { Highlight, useBillingUpdates, useHub, useLiveList, useToast } from "../../react";
import { fullName, loadList, useDirectory } from "../data";
import { label, money } from "../format";
import { useAction } from "./useAction";

export function Billing() {
  return (
    <section>
      <h1>Billing</h1>
      <Claims />
      <div className="cards">
        <Payments />
        <PriorAuths />
      </div>
    </section>
  );
}

function PatientSelect() {
  const { patients } = useDirectory();
  return (
    <select name="patient" aria-label="Patient" required>
      {patients.map((p) => <option key={p.id} value={p.id}>{fullName(p)}</option>)}
    </select>
  );
}

function Claims() {
  const hub = useHub();
  const act = useAction();
  const toast = useToast();
  const { patients } = useDirectory();
  const name = (id: string) => {
    const p = patients.find((x) => x.id === id);
    return p ? fullName(p) : id;
  };
  const [reason, setReason] = useState("Not covered");
  const list = useLiveList<Claim, TypesOf<"claim">>(typesOf("claim"), {
    load: () => loadList<Claim>(hub.api, "/claims", "claims"),
    onApplied: (e) => {
      if (!hub.isOwn(e) && e.type === "claim:paid") toast({ title: "Claim paid", body: `${name(e.patientId)} · ${money(e.data.paidAmountCents)}`, tone: "success" });
    },
  });
  const create = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    void act(() => hub.api.post("/claims", { patientId: f.get("patient"), payerId: f.get("payer"), amountCents: Math.round(Number(f.get("amount")) * 100) }));
  };
  return (
    <section>
      <h2>Claims</h2>
      <form className="inline-form" onSubmit={create} aria-label="New claim">
        <PatientSelect />
        <input name="payer" aria-label="Payer" defaultValue="payer-acme" required />
        <input name="amount" aria-label="Claim amount" placeholder="Amount ($)" type="number" min="0" step="0.01" required />
        <button type="submit">Create claim</button>
      </form>
      <label>Denial reason <input value={reason} onChange={(e) => setReason(e.target.value)} aria-label="Denial reason" /></label>
      <table className="board" aria-label="Claims">
        <thead><tr><th>Patient</th><th>Payer</th><th>Amount</th><th>Status</th><th>Reason</th><th /></tr></thead>
        <tbody>
          {list.items.map((c) => (
            <Highlight as="tr" key={c.id} changeKey={list.changes.get(c.id)} data-claim={c.id} className={`status-${c.status}`}>
              <td>{name(c.patientId)}</td>
              <td>{c.payerId}</td>
              <td>{money(c.amountCents)}</td>
              <td className="status">{label(c.status)}</td>
              <td>{c.reason ?? ""}</td>
              <td className="actions">
                {c.status === "draft" && <button type="button" onClick={() => act(() => hub.api.post(`/claims/${c.id}/submit`))}>Submit</button>}
                {["submitted", "accepted", "pending"].includes(c.status) && (
                  <>
                    <button type="button" onClick={() => act(() => hub.api.post(`/claims/${c.id}/status`, { status: "denied", reason }))}>Deny</button>
                    <button type="button" onClick={() => act(() => hub.api.post(`/claims/${c.id}/status`, { status: "paid", paidAmountCents: c.amountCents }))}>Mark paid</button>
                  </>
                )}
              </td>
            </Highlight>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Payments() {
  const hub = useHub();
  const act = useAction();
  const [recent, setRecent] = useState<{ payment: Payment; seq: number }[]>([]);
  // The feed shows payments as they are posted; balances follow patient:balance_changed.
  useBillingUpdates((e) => {
    if (e.type === "payment:received") setRecent((r) => [{ payment: e.data, seq: e.seq }, ...r].slice(0, 20));
  }, { types: ["payment:received"] });
  const { patients } = useDirectory();
  const name = (id: string) => patients.find((p) => p.id === id);
  return (
    <section className="card" aria-label="Payments">
      <h2>Payments</h2>
      <form className="inline-form" aria-label="Post a payment" onSubmit={(e) => {
        e.preventDefault();
        const f = new FormData(e.currentTarget);
        void act(() => hub.api.post("/payments", { patientId: f.get("patient"), amountCents: Math.round(Number(f.get("amount")) * 100), method: "card" }));
      }}>
        <PatientSelect />
        <input name="amount" aria-label="Payment amount" placeholder="Amount ($)" type="number" min="0.01" step="0.01" required />
        <button type="submit">Post payment</button>
      </form>
      <ul className="plain">
        {recent.map(({ payment, seq }) => {
          const p = name(payment.patientId);
          return (
            <Highlight as="li" key={payment.id} changeKey={seq}>
              {p ? fullName(p) : payment.patientId}: {money(payment.amountCents)} by {payment.method}, balance {money(payment.balanceCents)}
            </Highlight>
          );
        })}
      </ul>
    </section>
  );
}

function PriorAuths() {
  const hub = useHub();
  const act = useAction();
  const list = useLiveList<PriorAuth, TypesOf<"prior_auth">>(typesOf("prior_auth"), {
    load: () => loadList<PriorAuth>(hub.api, "/prior-auths", "priorAuths"),
  });
  return (
    <section className="card" aria-label="Prior authorizations">
      <h2>Prior authorizations</h2>
      <form className="inline-form" aria-label="Request a prior authorization" onSubmit={(e) => {
        e.preventDefault();
        const f = new FormData(e.currentTarget);
        void act(() => hub.api.post("/prior-auths", { patientId: f.get("patient"), payerId: "payer-acme", item: f.get("item") }));
      }}>
        <PatientSelect />
        <input name="item" aria-label="Item" defaultValue="Mohs surgery" required />
        <button type="submit">Request</button>
      </form>
      <ul className="plain">
        {list.items.map((pa) => (
          <Highlight as="li" key={pa.id} changeKey={list.changes.get(pa.id)}>
            {pa.item} · {label(pa.status)}{pa.reason ? ` · ${pa.reason}` : ""}{" "}
            {(pa.status === "requested" || pa.status === "pending") && (
              <>
                <button type="button" onClick={() => act(() => hub.api.post(`/prior-auths/${pa.id}/status`, { status: "approved" }))}>Approve</button>
                <button type="button" onClick={() => act(() => hub.api.post(`/prior-auths/${pa.id}/status`, { status: "denied", reason: "Not medically necessary" }))}>Deny</button>
              </>
            )}
          </Highlight>
        ))}
      </ul>
    </section>
  );
}
