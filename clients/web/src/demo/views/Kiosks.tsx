import QRCode from "qrcode";
import { useState, type FormEvent } from "react";

import { useHub, useHubQuery } from "../../react";
import { useDirectory } from "../data";
import { useAction } from "./useAction";

interface KioskRow {
  id: string;
  name: string;
  locationId: string;
  enrolledAt: string | null;
  lastSeenAt: string | null;
  disabled: boolean;
}

interface Registered extends KioskRow {
  enrollmentCode: string;
  enrollmentExpiresAt: string;
}

const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : "—");

/** Admins register lobby kiosks (a one-time code, also as a QR code) and disable them. */
export function Kiosks() {
  const hub = useHub();
  const act = useAction();
  const { locations } = useDirectory();
  const [version, setVersion] = useState(0);
  const [made, setMade] = useState<(Registered & { qr: string }) | null>(null);
  const { data: kiosks } = useHubQuery(() => hub.api.get<KioskRow[]>("/kiosks"), [version]);

  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const answer = await act(() =>
      hub.api.post<Registered>("/kiosks", { id: f.get("id"), name: f.get("name"), locationId: f.get("location") }),
    );
    if (answer) {
      const qr = await QRCode.toDataURL(answer.enrollmentCode, { margin: 1, width: 220 });
      setMade({ ...answer, qr });
      setVersion((v) => v + 1);
    }
  };
  const disable = async (k: KioskRow) => {
    await act(() => hub.api.request("DELETE", `/kiosks/${k.id}`));
    setVersion((v) => v + 1);
  };

  return (
    <section>
      <h1>Kiosks</h1>
      <form className="inline-form" onSubmit={submit} aria-label="Register a kiosk">
        <input name="id" aria-label="Kiosk id" placeholder="k-lobby" required pattern="[A-Za-z0-9][A-Za-z0-9_\-]*" maxLength={64} />
        <input name="name" aria-label="Kiosk name" placeholder="Main lobby" required maxLength={100} />
        <select name="location" aria-label="Location" required>
          {locations.map((l) => <option key={l.id} value={l.id}>{l.name}</option>)}
        </select>
        <button type="submit">Register</button>
      </form>
      {made && (
        <div className="card" aria-label="Enrollment code">
          <p>Open <code>/kiosk</code> on the device and enter this code (valid until {when(made.enrollmentExpiresAt)}, once):</p>
          <p className="big" data-enrollment-code>{made.enrollmentCode}</p>
          {made.qr && <img src={made.qr} alt={`QR code of the enrollment code for ${made.name}`} width={220} height={220} />}
        </div>
      )}
      <table className="board" aria-label="Kiosks">
        <thead>
          <tr><th>Id</th><th>Name</th><th>Location</th><th>Enrolled</th><th>Last seen</th><th>Status</th><th /></tr>
        </thead>
        <tbody>
          {(kiosks ?? []).map((k) => (
            <tr key={k.id} data-kiosk={k.id}>
              <td>{k.id}</td><td>{k.name}</td><td>{k.locationId}</td>
              <td>{when(k.enrolledAt)}</td><td>{when(k.lastSeenAt)}</td>
              <td className="status">{k.disabled ? "disabled" : k.enrolledAt ? "enrolled" : "waiting for enrollment"}</td>
              <td>{!k.disabled && <button type="button" onClick={() => void disable(k)}>Disable</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
