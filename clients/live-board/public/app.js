// The hub's no-build live board: today's appointments, kept current over MQTT.js.
// It follows the contract's recovery rules: persistent session, de-duplication by
// event id, and replay through GET /events when meta/seq shows a gap.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { token: null, tenant: null, seq: 0, seen: new Set(), board: new Map(), client: null };

async function api(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { "content-type": "application/json", authorization: `Bearer ${state.token}`, ...(options.headers || {}) },
  });
  const body = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(`${res.status} ${body && body.message}`);
  return body;
}

function setState(name) {
  const el = $("#state");
  el.className = `state ${name}`;
  el.textContent = { live: "Live", reconnecting: "Reconnecting", offline: "Offline" }[name];
}

const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function render(changedId) {
  const rows = [...state.board.values()].sort((a, b) => a.scheduledStart.localeCompare(b.scheduledStart));
  const tbody = $("#board");
  tbody.replaceChildren(...rows.map((a) => {
    const tr = document.createElement("tr");
    tr.className = `status-${a.status}` + (a.id === changedId ? " changed" : "");
    for (const text of [time(a.scheduledStart), a.patientName, a.providerName, a.locationName || a.locationId, a.status]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement("td");
    if (a.status === "scheduled" || a.status === "confirmed") {
      const btn = document.createElement("button");
      btn.textContent = "Check in";
      btn.onclick = () => api(`/appointments/${a.id}/status`, { method: "POST", body: JSON.stringify({ status: "checked_in" }) }).catch(alert);
      td.append(btn);
    }
    tr.append(td);
    return tr;
  }));
}

function apply(event) {
  if (state.seen.has(event.id)) return; // QoS 1 is at least once
  state.seen.add(event.id);
  state.seq = Math.max(state.seq, event.seq);
  const item = document.createElement("li");
  item.textContent = `#${event.seq} ${event.type} ${event.data.patientName || ""} by ${event.actor}`;
  $("#log").prepend(item);
  if (event.type.startsWith("appointment:")) {
    state.board.set(event.data.id, event.data);
    render(event.data.id);
  }
}

async function catchUp(latest) {
  while (state.seq < latest) {
    let page;
    try {
      page = await api(`/events?after=${state.seq}&limit=500&types=appointment:created,appointment:updated,appointment:cancelled,appointment:checkedin`);
    } catch (err) {
      if (String(err).startsWith("410")) return loadBoard(); // beyond replay: refetch the view
      throw err;
    }
    page.events.forEach(apply);
    if (!page.events.length) { state.seq = Math.max(state.seq, page.latestSeq); break; }
  }
}

async function loadBoard() {
  const list = await api("/appointments");
  state.board = new Map(list.map((a) => [a.id, a]));
  render();
}

async function connect() {
  const creds = await api("/realtime/credentials", { method: "POST" });
  state.seq = creds.latestSeq;
  const prefix = creds.topicPrefix;
  const client = mqtt.connect(creds.websocketUrl, {
    clientId: creds.clientId, username: creds.username, password: creds.password,
    protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 },
    reconnectPeriod: 2000,
  });
  state.client = client;
  client.on("connect", () => {
    setState("live");
    client.subscribe([`${prefix}patients/+/appointment/+/+`, `${prefix}meta/seq`], { qos: 1 });
  });
  client.on("reconnect", () => setState("reconnecting"));
  client.on("offline", () => setState("offline"));
  client.on("message", (topic, payload) => {
    if (!payload.length) return;
    const body = JSON.parse(payload.toString());
    if (topic.endsWith("/meta/seq")) {
      if (body.seq > state.seq) catchUp(body.seq).catch(console.error);
      return;
    }
    apply(body);
  });
}

$("#signin").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const res = await fetch("/dev/token", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ tenant: form.get("tenant"), user: form.get("user"), roles: [form.get("role")] }),
  });
  const body = await res.json();
  if (!res.ok) return alert(body.message);
  state.token = body.token;
  state.tenant = form.get("tenant");
  $("#who").textContent = `${form.get("user")} @ ${state.tenant}`;
  $("#signin").hidden = true;
  $("main").hidden = false;
  await loadBoard();
  await connect();
});

$("#book").addEventListener("click", async () => {
  const [patients, providers, locations] = await Promise.all([api("/patients?limit=50"), api("/providers"), api("/locations")]);
  if (!patients.length || !providers.length || !locations.length) return alert("seed the tenant first: hub seed --tenant " + state.tenant);
  const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
  const start = new Date(Date.now() + 5 * 60000);
  await api("/appointments", {
    method: "POST",
    body: JSON.stringify({
      patientId: pick(patients).id, providerId: pick(providers).id, locationId: pick(locations).id,
      scheduledStart: start.toISOString(), scheduledEnd: new Date(start.getTime() + 30 * 60000).toISOString(),
      reason: "Walk-in",
    }),
  }).catch(alert);
});
