import { useNotifications } from "../../react";

/** The notification tray: every open alert of the signed-in user. */
export function Tray() {
  const { open, acknowledge } = useNotifications();
  return (
    <section>
      <h1>Notifications</h1>
      {open.length === 0 && <p>Nothing needs your attention.</p>}
      <ul className="plain tray">
        {open.map((n) => (
          <li key={n.id} className={`tray-item tray-item--${n.severity}`}>
            <strong>{n.title}</strong> {n.body}{" "}
            <a href={`#/patients/${n.patientId}`}>Open chart</a>{" "}
            <button type="button" onClick={() => void acknowledge(n.id).catch(() => undefined)}>Acknowledge</button>
          </li>
        ))}
      </ul>
    </section>
  );
}
