import mqtt from "mqtt";
import { useEffect, useMemo, useState, type FormEvent } from "react";

import { HubApi, HubClient } from "../core";
import { CriticalAlerts, HubProvider, LiveIndicator, ToastProvider, useNotifications } from "../react";
import { DEMO_STAFF, savedSession, signIn, signOut, type Role, type Session } from "./session";
import { Billing } from "./views/Billing";
import { Board } from "./views/Board";
import { Kiosks } from "./views/Kiosks";
import { BiopsyTracking } from "./views/Biopsies";
import { PatientChart, PatientList } from "./views/Patients";
import { Schedule } from "./views/Schedule";
import { Tray } from "./views/Tray";

declare global {
  interface Window {
    /** For devtools and the end-to-end tests: the signed-in user's client, and MQTT.js to
     * try the broker with that user's own credentials (for example another tenant's topics). */
    hubDemo?: { client: HubClient; mqtt: typeof mqtt };
  }
}

function useHashRoute(): string {
  const [hash, setHash] = useState(() => location.hash || "#/schedule");
  useEffect(() => {
    const onChange = () => setHash(location.hash || "#/schedule");
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return hash;
}

export function App() {
  const [session, setSession] = useState<Session | null>(savedSession);
  const leave = () => {
    signOut();
    setSession(null);
  };
  return session ? <SignedIn session={session} onSignOut={leave} /> : <SignIn onSignedIn={setSession} />;
}

/** `?maxReplay=N` (development): a smaller replay limit than the client's 5,000 events, to
 * try what a view does after a gap it cannot replay (the live board refetches). */
function replayLimit(): { maxReplayEvents?: number } {
  const n = Number(new URLSearchParams(location.search).get("maxReplay"));
  return Number.isInteger(n) && n > 0 ? { maxReplayEvents: n } : {};
}

function SignedIn({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const client = useMemo(
    () => new HubClient({ api: new HubApi({ token: () => session.token }), userId: session.user, ...replayLimit() }),
    [session],
  );
  // The token itself expired or was refused: back to the sign-in.
  useEffect(() => client.onAuthLost(onSignOut), [client, onSignOut]);
  useEffect(() => {
    window.hubDemo = { client, mqtt };
    return () => {
      delete window.hubDemo;
    };
  }, [client]);
  return (
    <HubProvider client={client}>
      <ToastProvider>
        <Shell session={session} onSignOut={onSignOut} />
      </ToastProvider>
    </HubProvider>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const route = useHashRoute();
  const { open } = useNotifications();
  const chart = /^#\/patients\/([A-Za-z0-9_-]+)$/.exec(route);
  const nav: [string, string][] = [
    ["#/schedule", "Schedule"], ["#/board", "Board"], ["#/patients", "Patients"], ["#/billing", "Billing"], ["#/biopsies", "Biopsies"],
    ...(session.roles.includes("admin") ? ([["#/kiosks", "Kiosks"]] as [string, string][]) : []),
  ];
  return (
    <>
      <header className="topbar">
        <strong>Clinic hub</strong>
        <nav>
          {nav.map(([href, text]) => (
            <a key={href} href={href} aria-current={route.startsWith(href) ? "page" : undefined}>{text}</a>
          ))}
          <a href="#/notifications" aria-current={route === "#/notifications" ? "page" : undefined}>
            Notifications{open.length > 0 && <span className="badge" aria-label={`${open.length} open`}>{open.length}</span>}
          </a>
        </nav>
        <LiveIndicator />
        <span className="who">{session.user} @ {session.tenant}</span>
        <button type="button" onClick={onSignOut}>Sign out</button>
      </header>
      <CriticalAlerts />
      <main>
        {chart ? <PatientChart key={chart[1]} patientId={chart[1]!} session={session} />
          : route === "#/patients" ? <PatientList />
          : route === "#/billing" ? <Billing />
          : route === "#/biopsies" ? <BiopsyTracking session={session} />
          : route === "#/notifications" ? <Tray />
          : route === "#/board" ? <Board />
          : route === "#/kiosks" ? <Kiosks />
          : <Schedule />}
      </main>
    </>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const [user, role] = String(f.get("user")).split("|") as [string, Role];
    try {
      onSignedIn(await signIn(String(f.get("tenant")), user, role));
    } catch (err) {
      setError(String(err instanceof Error ? err.message : err));
    }
  };
  return (
    <main className="signin">
      <h1>Clinic hub</h1>
      <p>Development sign-in: pick a demo user of a tenant.</p>
      <form className="stack-form" onSubmit={submit} aria-label="Sign in">
        <label>Tenant <input name="tenant" defaultValue="demo" required pattern="[a-z0-9][a-z0-9\-]*" /></label>
        <label>User
          <select name="user">
            {DEMO_STAFF.map((s) => <option key={s.id} value={`${s.id}|${s.role}`}>{s.label}</option>)}
          </select>
        </label>
        <button type="submit">Sign in</button>
        {error && <p className="error" role="alert">{error}</p>}
      </form>
    </main>
  );
}
