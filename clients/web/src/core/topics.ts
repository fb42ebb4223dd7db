// Topic filters relative to the tenant's prefix (`tenants/{t}/`), and MQTT matching.

import { splitType, typesOf, type Entity, type EventType, type HubEvent } from "./catalog";

const OPAQUE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** What a subscription receives: event types (optionally of one patient), or raw filters. */
export type Selector =
  | { types: readonly EventType[]; patientId?: string }
  | { filters: readonly string[] };

export function checkId(id: string, what: string): string {
  if (!OPAQUE_ID.test(id)) throw new TypeError(`${what} is not an opaque id: ${JSON.stringify(id)}`);
  return id;
}

/** Checks a filter the way the broker would: `#` only last, wildcards fill a level. */
export function checkFilter(filter: string): string {
  const levels = filter.split("/");
  levels.forEach((level, i) => {
    if ((level.includes("#") && (level !== "#" || i !== levels.length - 1)) ||
        (level.includes("+") && level !== "+")) {
      throw new TypeError(`invalid topic filter: ${filter}`);
    }
  });
  if (filter.startsWith("/") || filter.startsWith("$")) throw new TypeError(`invalid topic filter: ${filter}`);
  return filter;
}

/** The event-level filters (never the retained snapshots) that carry these types. */
export function filtersFor(selector: Selector): string[] {
  if ("filters" in selector) return selector.filters.map(checkFilter);
  // An empty list would subscribe to nothing yet replay every type: say so instead.
  if (selector.types.length === 0) throw new TypeError("subscribe: `types` is empty; name at least one event type");
  const patient = selector.patientId === undefined ? "+" : checkId(selector.patientId, "patientId");
  const byEntity = new Map<Entity, Set<string>>();
  for (const type of selector.types) {
    const { entity, action } = splitType(type);
    (byEntity.get(entity) ?? byEntity.set(entity, new Set()).get(entity)!).add(action);
  }
  const out: string[] = [];
  for (const [entity, actions] of byEntity) {
    if (actions.size === typesOf(entity).length) out.push(`patients/${patient}/${entity}/+/+`);
    else for (const action of actions) out.push(`patients/${patient}/${entity}/+/${action}`);
  }
  return out;
}

/** The topic an event is published on, relative to the tenant prefix. */
export function eventTopic(event: HubEvent): string {
  const { entity, action } = splitType(event.type);
  return `patients/${event.patientId}/${entity}/${event.entityId}/${action}`;
}

export function matches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}
