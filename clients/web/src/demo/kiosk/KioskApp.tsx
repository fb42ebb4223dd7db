// The lobby kiosk at /kiosk: enrolled once with a code, then one question at a time.
// It holds no schedule and no patient list; it shows only the hub's answer to the
// patient in front of it, and forgets it when it resets.

import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";

import { enroll, forgetDevice, KioskLink, savedDevice, type Answer, type Device, type LinkStatus } from "./link";
import "./kiosk.css";

const RESET_AFTER_ANSWER_MS = 8_000;
const RESET_AFTER_IDLE_MS = 60_000;

const REFUSAL: Record<Exclude<Answer, { ok: true }>["reason"], string> = {
  no_match: "We could not find your appointment.",
  outside_window: "It is not yet time to check in for your appointment.",
  already_checked_in: "You are already checked in.",
  ambiguous: "We need a little more information.",
  rate_limited: "This kiosk is paused for a few minutes.",
  invalid: "Something was not entered correctly.",
};

export function KioskApp() {
  const [device, setDevice] = useState<Device | null>(savedDevice);
  // Disabled by the clinic (its secret is refused): back to enrollment.
  const unenrolled = useCallback(() => {
    forgetDevice();
    setDevice(null);
  }, []);
  if (!device) return <Enroll onEnrolled={setDevice} />;
  return <Kiosk key={device.kioskId} device={device} onUnenrolled={unenrolled} />;
}

function Enroll({ onEnrolled }: { onEnrolled: (d: Device) => void }) {
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const code = String(new FormData(e.currentTarget).get("code") ?? "");
    try {
      onEnrolled(await enroll(code));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <main className="kiosk">
      <h1>Set up this kiosk</h1>
      <form onSubmit={submit} aria-label="Enroll this kiosk">
        <label htmlFor="code">Enrollment code</label>
        <input id="code" name="code" autoComplete="off" autoCapitalize="characters" required maxLength={20} />
        <button type="submit" className="kiosk-primary">Enroll</button>
      </form>
      {error && <p className="kiosk-error" role="alert">{error}</p>}
    </main>
  );
}

type Step =
  | { at: "start" }
  | { at: "lastName" }
  | { at: "dob"; lastName: string }
  | { at: "asking" }
  | { at: "answer"; answer: Answer }
  | { at: "unreachable" };

function Kiosk({ device, onUnenrolled }: { device: Device; onUnenrolled: () => void }) {
  const [status, setStatus] = useState<LinkStatus>("connecting");
  const [name, setName] = useState("");
  const [step, setStep] = useState<Step>({ at: "start" });
  const link = useRef<KioskLink | null>(null);

  useEffect(() => {
    const l = new KioskLink(
      device,
      (s) => {
        setStatus(s);
        setName(l.name);
      },
      onUnenrolled,
    );
    link.current = l;
    l.start();
    return () => l.close();
  }, [device, onUnenrolled]);

  // Back to the start after each patient, and after a while without a touch.
  useEffect(() => {
    if (step.at === "start" || step.at === "asking") return;
    const ms = step.at === "answer" || step.at === "unreachable" ? RESET_AFTER_ANSWER_MS : RESET_AFTER_IDLE_MS;
    const timer = setTimeout(() => setStep({ at: "start" }), ms);
    return () => clearTimeout(timer);
  }, [step]);

  const ask = async (lastName: string, dob: string) => {
    setStep({ at: "asking" });
    try {
      const answer = await link.current!.ask(lastName, dob);
      setStep({ at: "answer", answer });
    } catch {
      setStep({ at: "unreachable" });
    }
  };

  const offline = status !== "online";
  return (
    <main className="kiosk" data-kiosk-status={status}>
      <header className="kiosk-head">
        <span>{name || "Check-in"}</span>
        <span className="kiosk-status" role="status">{status === "online" ? "Ready" : status === "offline" ? "Offline" : "Connecting"}</span>
      </header>
      {offline && step.at !== "answer" ? (
        <section className="kiosk-panel">
          <h1>This kiosk is offline</h1>
          <p>Please check in at the front desk.</p>
        </section>
      ) : step.at === "start" ? (
        <section className="kiosk-panel">
          <h1>Welcome</h1>
          <button type="button" className="kiosk-primary" onClick={() => setStep({ at: "lastName" })}>Check in</button>
        </section>
      ) : step.at === "lastName" ? (
        <Question
          key="lastName" label="What is your last name?" name="lastName" type="text" autoComplete="off"
          onCancel={() => setStep({ at: "start" })} onAnswer={(v) => setStep({ at: "dob", lastName: v })}
        />
      ) : step.at === "dob" ? (
        <Question
          key="dob" label="What is your date of birth?" name="dob" type="date"
          onCancel={() => setStep({ at: "start" })} onAnswer={(v) => void ask(step.lastName, v)}
        />
      ) : step.at === "asking" ? (
        <section className="kiosk-panel"><h1>One moment…</h1></section>
      ) : step.at === "unreachable" ? (
        <section className="kiosk-panel">
          <h1>We could not reach the clinic's system</h1>
          <p>Please check in at the front desk.</p>
          <button type="button" className="kiosk-primary" onClick={() => setStep({ at: "start" })}>Done</button>
        </section>
      ) : (
        <Result answer={step.answer} onDone={() => setStep({ at: "start" })} />
      )}
    </main>
  );
}

function Question(props: {
  label: string; name: string; type: "text" | "date"; autoComplete?: string;
  onAnswer: (value: string) => void; onCancel: () => void;
}) {
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const value = String(new FormData(e.currentTarget).get(props.name) ?? "").trim();
    if (value) props.onAnswer(value);
  };
  return (
    <form className="kiosk-panel" onSubmit={submit} aria-label="Question">
      <label htmlFor={props.name}><h1>{props.label}</h1></label>
      <input id={props.name} name={props.name} type={props.type} autoComplete={props.autoComplete}
        required maxLength={100} autoFocus />
      <div className="kiosk-row">
        <button type="button" className="kiosk-secondary" onClick={props.onCancel}>Start over</button>
        <button type="submit" className="kiosk-primary">Next</button>
      </div>
    </form>
  );
}

function Result({ answer, onDone }: { answer: Answer; onDone: () => void }) {
  if (answer.ok) {
    const { patientDisplayName, providerName, scheduledStart } = answer.appointment;
    const at = new Date(scheduledStart).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return (
      <section className="kiosk-panel kiosk-ok" data-outcome="ok">
        <h1>You are checked in, {patientDisplayName}</h1>
        <p>{at} with {providerName}. Please take a seat.</p>
        <button type="button" className="kiosk-primary" onClick={onDone}>Done</button>
      </section>
    );
  }
  return (
    <section className="kiosk-panel kiosk-refused" data-outcome={answer.reason}>
      <h1>Please see the front desk</h1>
      <p>{REFUSAL[answer.reason] ?? REFUSAL.invalid}</p>
      <button type="button" className="kiosk-primary" onClick={onDone}>Done</button>
    </section>
  );
}
