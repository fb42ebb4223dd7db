import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";

export type ToastTone = "info" | "success" | "warning" | "error";

export interface Toast {
  title: string;
  body?: string;
  tone?: ToastTone;
}

// Long enough to read; an error stays longer. Critical alerts are not toasts: they
// stay until acknowledged (CriticalAlerts).
const DURATION_MS: Record<ToastTone, number> = { info: 5000, success: 4000, warning: 8000, error: 10000 };
const MAX_VISIBLE = 4;

type Shown = Toast & { key: number; tone: ToastTone };
const ToastContext = createContext<((toast: Toast) => void) | null>(null);

export function useToast(): (toast: Toast) => void {
  const push = useContext(ToastContext);
  if (!push) throw new Error("useToast must be used inside <ToastProvider>");
  return push;
}

/** The ToastProvider's push, or null outside one (hooks whose toasts are optional). */
export function useOptionalToast(): ((toast: Toast) => void) | null {
  return useContext(ToastContext);
}

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Shown[]>([]);
  const next = useRef(0);
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());
  const dismiss = useCallback((key: number) => {
    clearTimeout(timers.current.get(key));
    timers.current.delete(key);
    setToasts((ts) => ts.filter((t) => t.key !== key));
  }, []);
  const push = useCallback(
    (toast: Toast) => {
      const shown: Shown = { ...toast, tone: toast.tone ?? "info", key: next.current++ };
      // A burst shows the newest few, not a wall of toasts.
      setToasts((ts) => [...ts, shown].slice(-MAX_VISIBLE));
      timers.current.set(shown.key, setTimeout(() => dismiss(shown.key), DURATION_MS[shown.tone]));
    },
    [dismiss],
  );
  useEffect(() => {
    const all = timers.current;
    return () => all.forEach(clearTimeout);
  }, []);
  const value = useMemo(() => push, [push]);
  return (
    <ToastContext.Provider value={value}>
      {children}
      <div className="hub-toasts" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.key} className={`hub-toast hub-toast--${t.tone}`} role="status">
            <strong>{t.title}</strong>
            {t.body && <span>{t.body}</span>}
            <button type="button" aria-label="Dismiss" onClick={() => dismiss(t.key)}>
              ×
            </button>
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}
