import { useRef, useState } from "react";

import { typesOf, type Appointment, type HubEvent, type TypesOf } from "../../core";
import { LiveItem, RealtimeWrapper, useHub, useHubQuery } from "../../react";
import { label, localDay, time } from "../format";

interface Applied {
  item: Appointment;
  seq: number;
  load: number; // the load that was running or done when the event arrived
}

/** Today's appointments the way an app ported from the Socket.IO version shows them: a
 * plain load, wrapped in RealtimeWrapper (status, highlights, toasts, refetch on a gap). */
export function Board() {
  const hub = useHub();
  const day = localDay(new Date());
  const loads = useRef(0);
  const [applied, setApplied] = useState<Map<string, Applied>>(() => new Map());
  const query = useHubQuery(async () => {
    const started = ++loads.current;
    const rows = await hub.api.get<Appointment[]>(`/appointments?date=${day}`);
    // The fresh list supersedes what was applied before it began, not what came meanwhile.
    setApplied((m) => new Map([...m].filter(([, a]) => a.load >= started)));
    return rows;
  }, [day]);
  const apply = (e: HubEvent<TypesOf<"appointment">>) =>
    setApplied((m) =>
      (m.get(e.entityId)?.seq ?? 0) >= e.seq ? m : new Map(m).set(e.entityId, { item: e.data, seq: e.seq, load: loads.current }),
    );
  const byId = new Map((query.data ?? []).map((a) => [a.id, a]));
  for (const [id, a] of applied) byId.set(id, a.item);
  const rows = [...byId.values()]
    .filter((a) => localDay(new Date(a.scheduledStart)) === day)
    .sort((a, b) => a.scheduledStart.localeCompare(b.scheduledStart));
  return (
    <RealtimeWrapper types={typesOf("appointment")} onEvent={apply} onRefetch={query.reload} aria-label="Live board">
      <h1>Live board</h1>
      {query.error && <p className="error">Could not load the board: {query.error.message}</p>}
      <ul className="plain board-list">
        {rows.map((a) => (
          <LiveItem as="li" key={a.id} id={a.id} data-board={a.id} className={`status-${a.status}`}>
            {time(a.scheduledStart)} {a.patientName} · <span className="status">{label(a.status)}</span>
          </LiveItem>
        ))}
      </ul>
    </RealtimeWrapper>
  );
}
