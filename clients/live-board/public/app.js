// The hub's no-build live board: today's appointments, kept current over MQTT.js.
// It follows the contract's recovery rules (section 7): persistent session,
// de-duplication by event id, and replay through GET /events when meta/seq shows a gap.
"use strict";

const TYPES = "appointment:created,appointment:updated,appointment:cancelled,appointment:checkedin";
const $ = (sel) => document.querySelector(sel);
const state = {
  token: null, tenant: null,
  seq: 0,     // the view reflects every event up to this seq
  target: 0,  // the highest meta/seq heard of; catch-up replays up to it
  seen: new Set(), board: new Map(),
  client: null, clientId: null, renewTimer: null,
  catchingUp: null, restarting: null, // promises: at most one of each at a time
};

async function api(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { "content-type": "application/json", authorization: `Bearer ${state.token}`, ...(options.headers || {}) },
  });
  const body = res.status === 204 ? null : await res.json();
  if (!res.ok) throw Object.assign(new Error(`${res.status} ${body && body.message}`), { status: res.status, body });
  return body;
}

// New credentials (new client id), or with a clientId a new password for that session.
const credentials = (clientId) =>
  api("/realtime/credentials", { method: "POST", body: clientId ? JSON.stringify({ clientId }) : undefined });

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
  if (state.seen.has(event.id)) return; // QoS 1 is at least once, and replay overlaps live
  state.seen.add(event.id);
  // While a replay fills a gap, a live event must not move seq past the events still
  // missing (or a failed replay would resume after them); the replay sets seq itself.
  if (!state.catchingUp) state.seq = Math.max(state.seq, event.seq);
  const item = document.createElement("li");
  item.textContent = `#${event.seq} ${event.type} ${event.data.patientName || ""} by ${event.actor}`;
  $("#log").prepend(item);
  if (event.type.startsWith("appointment:")) {
    state.board.set(event.data.id, event.data);
    render(event.data.id);
  }
}

// Replay up to `latest` through GET /events. One replay at a time: a meta/seq that
// arrives meanwhile only raises the target, and the running replay goes on to it.
function catchUp(latest) {
  state.target = Math.max(state.target, latest);
  if (!state.catchingUp && state.seq < state.target) {
    state.catchingUp = replay()
      .catch((err) => {
        console.error("catch-up failed", err);
        if (err.status !== 401) setTimeout(() => catchUp(0), 5000);
      })
      .finally(() => { state.catchingUp = null; });
  }
  return state.catchingUp;
}

async function replay() {
  while (state.seq < state.target) {
    let page;
    try {
      page = await api(`/events?after=${state.seq}&limit=500&types=${TYPES}`);
    } catch (err) {
      if (err.status !== 410) throw err;
      // The gap is beyond what replay keeps: refetch the view. The 410's latestSeq was
      // read before the board, so anything committed in between is replayed, not lost.
      const latest = err.body.details?.[0]?.latestSeq ?? state.target;
      await loadBoard();
      state.seq = Math.max(state.seq, latest);
      continue;
    }
    page.events.forEach(apply);
    // Filtered by type, pages hold few events: go on after the last one, and once
    // none are left, everything up to latestSeq has been seen.
    const next = page.events.length ? page.events[page.events.length - 1].seq : page.latestSeq;
    if (next <= state.seq) break; // never spin (latestSeq below meta/seq should not happen)
    state.seq = next;
  }
}

async function loadBoard() {
  const list = await api("/appointments");
  state.board = new Map(list.map((a) => [a.id, a]));
  render();
}

// Renew at about 80% of the credentials' remaining lifetime, with a floor of 5 s.
function scheduleRenewal(creds) {
  clearTimeout(state.renewTimer);
  const left = new Date(creds.expiresAt).getTime() - Date.now();
  state.renewTimer = setTimeout(renew, Math.max(5000, left * 0.8));
}

async function renew() {
  const client = state.client;
  try {
    const creds = await credentials(state.clientId);
    if (client !== state.client) return; // replaced meanwhile
    // The broker drops the connection on the password change; MQTT.js reconnects
    // with client.options, so the new password goes there (same client id, so the
    // persistent session and its queued events survive).
    client.options.username = creds.username;
    client.options.password = creds.password;
    scheduleRenewal(creds);
  } catch (err) {
    if (err.status === 404) return restart(); // session gone (expired or revoked)
    console.error("renewal failed; retrying", err);
    state.renewTimer = setTimeout(renew, 10000); // once expired, the broker refusal restarts
  }
}

// Start over with fresh credentials and a new client id, when the old session cannot be
// renewed or the broker refuses its password: retrying a dead password never ends.
function restart() {
  state.restarting ??= (async () => {
    clearTimeout(state.renewTimer);
    const old = state.client;
    state.client = null; // first, so the old client's close does not show Offline
    old?.end(true);
    setState("reconnecting");
    try {
      const creds = await credentials();
      connect(creds);
      // The new client id has no queued events: replay what was missed (the retained
      // meta/seq on subscribe also triggers this; the guard keeps it to one replay).
      catchUp(creds.latestSeq);
    } catch (err) {
      console.error("fresh credentials failed", err);
      setState("offline");
      if (err.status !== 401) setTimeout(restart, 5000); // 401: the sign-in itself expired
    }
  })().finally(() => { state.restarting = null; });
  return state.restarting;
}

function connect(creds) {
  const prefix = creds.topicPrefix;
  const client = mqtt.connect(creds.websocketUrl, {
    clientId: creds.clientId, username: creds.username, password: creds.password,
    protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 },
    reconnectPeriod: 2000,
    // MQTT.js stops reconnecting after any refused CONNACK; keep retrying transient
    // refusals (server unavailable...), auth refusals restart below.
    reconnectOnConnackError: true,
  });
  state.client = client;
  state.clientId = creds.clientId;
  scheduleRenewal(creds);
  // Ignore a replaced client's late events (it would otherwise flip the indicator).
  const on = (name, fn) => client.on(name, (...args) => { if (client === state.client) fn(...args); });
  on("connect", () => {
    setState("live");
    // Resubscribe on every connect; the retained meta/seq then shows any gap.
    client.subscribe([`${prefix}patients/+/appointment/+/+`, `${prefix}meta/seq`], { qos: 1 });
  });
  on("reconnect", () => setState("reconnecting"));
  on("offline", () => setState("offline"));
  on("close", () => setState("offline"));
  on("error", (err) => {
    // A refused CONNACK: 0x86 bad user name or password, 0x87 not authorized.
    if (err.code === 134 || err.code === 135) restart();
    else console.error("mqtt", err);
  });
  on("message", (topic, payload) => {
    if (!payload.length) return;
    const body = JSON.parse(payload.toString());
    if (topic.endsWith("/meta/seq")) {
      if (body.seq > state.seq) catchUp(body.seq);
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
  try {
    // Credentials first: their latestSeq is read before the board, so an event
    // committed in between is replayed on connect (meta/seq) instead of lost.
    const creds = await credentials();
    state.seq = state.target = creds.latestSeq;
    await loadBoard();
    connect(creds);
  } catch (err) {
    alert(err);
  }
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
