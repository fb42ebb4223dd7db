import { createElement, useEffect, useRef, useState, type HTMLAttributes, type ReactNode } from "react";

import { Pulse } from "../pulse";

/** True for `ms` after `changeKey` changes to a value, and on first render when it
 * already has one (an item that arrived by an event); a key that goes away (the live list
 * settled an old change) is no change. A burst of changes keeps it on and extends it, so
 * the mark stays steady instead of flashing. */
export function useHighlight(changeKey: unknown, ms = 2500): boolean {
  const [on, setOn] = useState(false);
  const [pulse] = useState(() => new Pulse(ms, setOn));
  const first = useRef(true);
  useEffect(() => {
    first.current = false;
    if (changeKey === undefined) return;
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
