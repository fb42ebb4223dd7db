import { createElement, useEffect, useRef, useState, type HTMLAttributes, type ReactNode } from "react";

/** True for `ms` after `changeKey` changes (not on first render). A burst of changes
 * keeps it on and extends it, so the mark stays steady instead of flashing. */
export function useHighlight(changeKey: unknown, ms = 2500): boolean {
  const [on, setOn] = useState(false);
  const first = useRef(true);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      if (changeKey === undefined) return;
    }
    setOn(true);
    clearTimeout(timer.current);
    timer.current = setTimeout(() => setOn(false), ms);
  }, [changeKey, ms]);
  useEffect(() => () => clearTimeout(timer.current), []);
  return on;
}

export interface HighlightProps extends HTMLAttributes<HTMLElement> {
  /** Anything that changes when the item changes: the seq of its last event. */
  changeKey: unknown;
  /** The element to render (default `div`; `tr` in a table). */
  as?: string;
  ms?: number;
  children?: ReactNode;
}

/** Marks an item that just changed for a few seconds (class `hub-changed`). */
export function Highlight({ changeKey, as = "div", ms, className, children, ...rest }: HighlightProps) {
  const on = useHighlight(changeKey, ms);
  return createElement(
    as,
    { ...rest, className: [className, on ? "hub-changed" : ""].filter(Boolean).join(" ") || undefined, "data-changed": on ? "true" : undefined },
    children,
  );
}
