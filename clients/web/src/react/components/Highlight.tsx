import { createElement, useEffect, useRef, useState, type HTMLAttributes, type ReactNode } from "react";

import { Pulse } from "../pulse";

/** True for `ms` after `changeKey` changes, and on first render when it already has a
 * value (an item that arrived by an event). A burst of changes keeps it on and extends
 * it, so the mark stays steady instead of flashing. */
export function useHighlight(changeKey: unknown, ms = 2500): boolean {
  const [on, setOn] = useState(false);
  const [pulse] = useState(() => new Pulse(ms, setOn));
  const first = useRef(true);
  useEffect(() => {
    const initial = first.current;
    first.current = false;
    if (initial && changeKey === undefined) return;
    pulse.mark();
  }, [changeKey, pulse]);
  useEffect(() => () => pulse.dispose(), [pulse]);
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
