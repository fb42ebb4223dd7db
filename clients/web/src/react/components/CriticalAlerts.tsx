import { useState } from "react";

import { useNotifications } from "../hooks";

/** Concerning results and denials: shown prominently until acknowledged through the
 * api. An acknowledgement from elsewhere (another tab, a biopsy review) removes it too. */
export function CriticalAlerts() {
  const { open, acknowledge } = useNotifications();
  const [busy, setBusy] = useState<string | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  if (open.length === 0) return null;
  return (
    <section className="hub-alerts" aria-label="Critical alerts">
      {open.map((n) => (
        <div key={n.id} className={`hub-alert hub-alert--${n.severity}`} role="alert" data-notification={n.id}>
          <div>
            <strong>{n.title}</strong>
            <p>{n.body}</p>
            {n.attempt > 1 && <small>Sent {n.attempt} times{n.escalated ? ", escalated" : ""}</small>}
            {failed === n.id && <small>Could not acknowledge; try again.</small>}
          </div>
          <button
            type="button"
            disabled={busy === n.id}
            onClick={() => {
              setBusy(n.id);
              setFailed(null);
              acknowledge(n.id)
                .catch(() => setFailed(n.id))
                .finally(() => setBusy(null));
            }}
          >
            Acknowledge
          </button>
        </div>
      ))}
    </section>
  );
}
