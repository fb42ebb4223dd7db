import { afterEach, describe, expect, it, vi } from "vitest";

import { ApiError, type Credentials } from "../src/core/api";
import type { HubEvent } from "../src/core/catalog";
import { HubClient, type ConnectionStatus } from "../src/core/client";
import { typesOf } from "../src/core/catalog";
import { appointmentEvent as ev, creds, fakeApi, fakeConnect, page } from "./fakes";

const quiet = { warn: () => undefined, error: () => undefined };
const fast = { baseMs: 2, maxMs: 4 };
const after = (path: string) => Number(new URL(path, "http://hub").searchParams.get("after"));
const TOPIC = (e: HubEvent) => `tenants/acme/patients/${e.patientId}/appointment/${e.entityId}/created`;

function setup(route: (path: string, body: unknown) => unknown, options: { maxReplayEvents?: number; backoff?: typeof fast } = {}) {
  const { api, calls } = fakeApi(route);
  const mqtt = fakeConnect();
  const hub = new HubClient({ api, userId: "fd-1", connect: mqtt.connect, backoff: fast, logger: quiet, ...options });
  const statuses: ConnectionStatus[] = [];
  hub.onStatus((s) => statuses.push(s));
  const seen: HubEvent[] = [];
  const refetches: number[] = [];
  hub.subscribe({ types: typesOf("appointment") }, (e) => seen.push(e), { onRefetch: () => refetches.push(hub.seq) });
  return { hub, api, calls, clients: mqtt.clients, statuses, seen, refetches };
}

const issued = (c: Credentials) => (path: string) => {
  if (path === "/realtime/credentials") return c;
  if (path === "/notifications") return { notifications: [] };
  if (path.startsWith("/events")) return page([], c.latestSeq); // the catch-up of each connect
  throw new Error(`unexpected ${path}`);
};

let running: HubClient | undefined;
afterEach(() => {
  running?.stop();
  running = undefined;
  vi.useRealTimers();
});

describe("HubClient", () => {
  it("connects with exactly the issued client id, a persistent session and its subscriptions", async () => {
    const c = creds();
    const t = setup(issued(c));
    running = t.hub;
    await t.hub.start();
    const [client] = t.clients;
    expect(client!.url).toBe(c.websocketUrl);
    expect(client!.options).toMatchObject({
      clientId: c.clientId, username: c.username, password: c.password,
      protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 },
    });
    expect(t.statuses).toEqual(["connecting"]);
    client!.accept(false);
    expect(t.statuses).toEqual(["connecting", "live"]);
    expect(client!.subscribed).toEqual([
      "tenants/acme/meta/seq", // first: its retained value bounds what the event filters may have missed
      "tenants/acme/patients/+/appointment/+/+",
      "tenants/acme/users/fd-1/notifications/+",
    ]);
  });

  it("is ready for views that ask before it starts, and restarts on the same credentials after a stop", async () => {
    const t = setup(issued(creds()));
    running = t.hub;
    const ready = t.hub.ready(); // children's effects run before the provider's
    t.hub.start();
    t.hub.stop(); // React's StrictMode mounts twice
    t.hub.start();
    await ready;
    await vi.waitFor(() => expect(t.clients).toHaveLength(1));
    t.clients[0]!.accept();
    t.hub.stop();
    t.hub.start();
    expect(t.clients).toHaveLength(2);
    expect(t.clients[1]!.options.clientId).toBe(t.clients[0]!.options.clientId);
    expect(t.calls.filter((c) => c.path === "/realtime/credentials")).toHaveLength(1);
  });

  it("hands an event over once however often it arrives, and ignores retained snapshots", async () => {
    const t = setup(issued(creds({ latestSeq: 10 })));
    running = t.hub;
    await t.hub.start();
    const client = t.clients[0]!;
    client.accept();
    const e = ev(11);
    client.deliver(TOPIC(e), e);
    client.deliver(TOPIC(e), e);
    client.deliver(`tenants/acme/patients/p-1/appointment/a-12`, ev(12), true);
    await vi.waitFor(() => expect(t.seen.map((x) => x.id)).toEqual(["ev-11"])); // after the connect's catch-up
    client.deliver(TOPIC(e), e);
    expect(t.seen.map((x) => x.id)).toEqual(["ev-11"]);
    expect(t.hub.seq).toBe(11);
  });

  it("resubscribes only when the broker has lost the session, but reads meta/seq on every connect", async () => {
    const t = setup(issued(creds()));
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept(false);
    t.clients[0]!.drop();
    expect(t.statuses.at(-1)).toBe("reconnecting");
    await vi.waitFor(() => expect(t.clients).toHaveLength(2));
    t.clients[1]!.accept(true);
    expect(t.clients[1]!.subscribed).toEqual(["tenants/acme/meta/seq"]);
    t.clients[1]!.drop();
    await vi.waitFor(() => expect(t.clients).toHaveLength(3));
    t.clients[2]!.accept(false);
    expect(t.clients[2]!.subscribed).toContain("tenants/acme/patients/+/appointment/+/+");
    expect(t.statuses.at(-1)).toBe("live");
  });

  it("fills a gap shown by meta/seq with GET /events, and delivers live events after the replay in order", async () => {
    let answer: (p: unknown) => void = () => undefined;
    const replay = new Promise((resolve) => (answer = resolve));
    const t = setup((path) => (path.startsWith("/events") ? replay : issued(creds({ latestSeq: 10 }))(path)));
    running = t.hub;
    await t.hub.start();
    const client = t.clients[0]!;
    client.accept(true);
    client.deliver("tenants/acme/meta/seq", { seq: 13, at: "..." }, true);
    const live = ev(14);
    client.deliver(TOPIC(live), live); // arrives while the replay is under way
    expect(t.seen).toEqual([]);
    answer(page([ev(11), ev(13)], 13));
    await vi.waitFor(() => expect(t.seen.map((e) => e.seq)).toEqual([11, 13, 14]));
    const call = t.calls.find((c) => c.path.startsWith("/events"))!;
    expect(call.path).toContain("after=10");
    expect(decodeURIComponent(call.path)).toContain("types=appointment:created,appointment:updated");
    expect(t.hub.seq).toBe(14);
  });

  it("tells the view to refetch when replay answers 410, and resumes from its latestSeq", async () => {
    const t = setup((path) => {
      if (path.startsWith("/events")) throw new ApiError(410, "gone", "pruned", [{ oldestSeq: 500, latestSeq: 900 }]);
      return issued(creds({ latestSeq: 10 }))(path);
    });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept(true);
    t.clients[0]!.deliver("tenants/acme/meta/seq", { seq: 900 }, true);
    await vi.waitFor(() => expect(t.refetches).toEqual([900]));
    expect(t.seen).toEqual([]);
  });

  it("refetches without replaying when the gap is larger than it replays", async () => {
    const t = setup(issued(creds({ latestSeq: 10 })), { maxReplayEvents: 100 });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept(true);
    t.clients[0]!.deliver("tenants/acme/meta/seq", { seq: 111 }, true);
    await vi.waitFor(() => expect(t.refetches).toEqual([111]));
    expect(t.seen).toEqual([]);
  });

  it("renews its password before the credentials expire and reconnects on the same session", async () => {
    vi.useFakeTimers();
    const first = creds({ expiresAt: new Date(Date.now() + 100_000).toISOString() });
    const renewed = { ...first, password: "pw-renewed", expiresAt: new Date(Date.now() + 3_700_000).toISOString() };
    const t = setup((path, body) => {
      if (path === "/realtime/credentials") return body ? renewed : first;
      return { notifications: [] };
    });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept();
    await vi.advanceTimersByTimeAsync(79_000);
    expect(t.calls.filter((c) => c.path === "/realtime/credentials")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(t.calls.filter((c) => c.path === "/realtime/credentials").at(-1)!.body).toEqual({ clientId: first.clientId });
    // The broker keeps accepting the old token until its exp: the client itself closes
    // that connection and reconnects with the renewed token on the same client id.
    await vi.advanceTimersByTimeAsync(0);
    expect(t.clients[0]!.ended).toBe(true);
    expect(t.clients[1]!.options).toMatchObject({ clientId: first.clientId, password: "pw-renewed", clean: false });
    t.clients[1]!.accept(true);
    expect(t.statuses).toEqual(["connecting", "live"]);
    expect(t.clients).toHaveLength(2);
  }, 30_000); // 80 s of fake time take several real seconds on a loaded 2-core machine

  it("on an auth refusal takes a new password, and new credentials when the session is gone", async () => {
    const first = creds();
    const fresh = creds();
    const t = setup((path, body) => {
      if (path === "/realtime/credentials") {
        if (body) throw new ApiError(404, "not_found", "session not found");
        return t.calls.filter((c) => c.path === "/realtime/credentials").length === 1 ? first : fresh;
      }
      return { notifications: [] };
    });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept();
    t.clients[0]!.drop();
    await vi.waitFor(() => expect(t.clients).toHaveLength(2));
    t.clients[1]!.refuse(0x86);
    await vi.waitFor(() => expect(t.clients).toHaveLength(3));
    expect(t.clients[2]!.options).toMatchObject({ clientId: fresh.clientId, password: fresh.password });
    const renewal = t.calls.find((c) => c.body !== undefined)!;
    expect(renewal.body).toEqual({ clientId: first.clientId });
    t.clients[2]!.accept(false);
    expect(t.clients[2]!.subscribed).toContain("tenants/acme/patients/+/appointment/+/+");
  });

  it("never connects with a refused password again, even while the api cannot renew it", async () => {
    const first = creds();
    let apiUp = false;
    const t = setup((path, body) => {
      if (path === "/realtime/credentials" && body) {
        if (!apiUp) throw new ApiError(503, "broker_unavailable", "try later");
        return { ...first, password: "pw-new" };
      }
      return issued(first)(path);
    });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept();
    t.clients[0]!.refuse(0x86);
    await vi.waitFor(() => expect(t.calls.filter((c) => c.body !== undefined).length).toBeGreaterThanOrEqual(3));
    expect(t.clients).toHaveLength(1); // no login with the refused password meanwhile
    apiUp = true;
    await vi.waitFor(() => expect(t.clients).toHaveLength(2));
    expect(t.clients[1]!.options).toMatchObject({ clientId: first.clientId, password: "pw-new" });
  });

  it("goes offline and reports it when the sign-in itself is refused", async () => {
    const t = setup((path, body) => {
      if (path === "/realtime/credentials" && body) throw new ApiError(401, "unauthorized", "token expired");
      return issued(creds())(path);
    });
    running = t.hub;
    const lost: number[] = [];
    t.hub.onAuthLost((err) => lost.push(err.status));
    await t.hub.start();
    t.clients[0]!.accept();
    t.clients[0]!.refuse(0x86);
    await vi.waitFor(() => expect(lost).toEqual([401]));
    expect(t.hub.status).toBe("offline");
    expect(t.clients).toHaveLength(1);
  });

  it("keeps the newest state of each notification and drops acknowledged ones", async () => {
    const t = setup(issued(creds()));
    running = t.hub;
    await t.hub.start();
    const client = t.clients[0]!;
    client.accept();
    const n = {
      id: "n-1", tenant: "acme", userId: "fd-1", kind: "claim_denied", severity: "alert", title: "Claim denied",
      body: "", eventId: "e", eventType: "claim:denied", patientId: "p-1", entity: "claim", entityId: "c-1",
      createdAt: "2026-11-26T09:00:00Z", version: 2, attempt: 2, escalated: false, acknowledgedAt: null, acknowledgedBy: null,
    };
    const topic = "tenants/acme/users/fd-1/notifications/n-1";
    client.deliver(topic, n);
    client.deliver(topic, { ...n, version: 1, attempt: 1 }); // late, older
    expect(t.hub.notifications.open().map((x) => x.version)).toEqual([2]);
    client.deliver(topic, { ...n, version: 3, acknowledgedAt: "2026-11-26T09:01:00Z", acknowledgedBy: "fd-1" });
    expect(t.hub.notifications.open()).toEqual([]);
  });

  it("keeps live events held and retries when the replay fails, so the gap is not skipped", async () => {
    let fails = 1;
    const t = setup((path) => {
      if (path.startsWith("/events")) {
        if (fails-- > 0) throw new ApiError(503, "unavailable", "try later");
        return after(path) < 13 ? page([ev(11), ev(12), ev(13)].filter((e) => e.seq > after(path)), 13) : page([], 13);
      }
      return issued(creds({ latestSeq: 10 }))(path);
    });
    running = t.hub;
    await t.hub.start();
    const client = t.clients[0]!;
    client.accept(true);
    client.deliver("tenants/acme/meta/seq", { seq: 13 }, true);
    const live = ev(14);
    client.deliver(TOPIC(live), live);
    await vi.waitFor(() => expect(t.seen.map((e) => e.seq)).toEqual([11, 12, 13, 14]));
    expect(t.calls.filter((c) => c.path.startsWith("/events")).map((c) => after(c.path))).toEqual([10, 10]);
    expect(t.hub.seq).toBe(14);
  });

  it("replays on every connect, so a live event that comes before meta/seq does not hide the gap", async () => {
    const t = setup((path) => {
      if (path.startsWith("/events")) return page([ev(11), ev(12), ev(13), ev(14)].filter((e) => e.seq > after(path)), 14);
      return issued(creds({ latestSeq: 10 }))(path);
    });
    running = t.hub;
    await t.hub.start();
    const client = t.clients[0]!;
    client.accept(false); // the broker lost the session: 11-13 were never queued
    const live = ev(14);
    client.deliver(TOPIC(live), live); // before this connection's retained meta/seq
    client.deliver("tenants/acme/meta/seq", { seq: 14 }, true);
    await vi.waitFor(() => expect(t.seen.map((e) => e.seq)).toEqual([11, 12, 13, 14]));
    expect(t.calls.filter((c) => c.path.startsWith("/events")).map((c) => after(c.path))).toEqual([10]);
    expect(t.hub.seq).toBe(14);
  });

  it("acts only on the retained meta/seq, not on each live one", async () => {
    const t = setup(issued(creds({ latestSeq: 10 })));
    running = t.hub;
    await t.hub.start();
    const client = t.clients[0]!;
    client.accept(true);
    client.deliver("tenants/acme/meta/seq", { seq: 10 }, true);
    await vi.waitFor(() => expect(t.calls.filter((c) => c.path.startsWith("/events"))).toHaveLength(1));
    client.deliver("tenants/acme/meta/seq", { seq: 20 }); // a relay batch of types this view does not want
    client.deliver("tenants/acme/meta/seq", { seq: 25 });
    await new Promise((r) => setTimeout(r, 20));
    expect(t.calls.filter((c) => c.path.startsWith("/events"))).toHaveLength(1);
    expect(t.hub.seq).toBe(10);
  });

  it("pages on from the last event when the server answers pages smaller than asked", async () => {
    const all = [11, 12, 13, 14, 15].map((seq) => ev(seq));
    const t = setup((path) => {
      if (path.startsWith("/events")) return page(all.filter((e) => e.seq > after(path)).slice(0, 2), 15); // capped at 2
      return issued(creds({ latestSeq: 10 }))(path);
    });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept(true);
    t.clients[0]!.deliver("tenants/acme/meta/seq", { seq: 15 }, true);
    await vi.waitFor(() => expect(t.seen.map((e) => e.seq)).toEqual([11, 12, 13, 14, 15]));
    expect(t.hub.seq).toBe(15);
  });

  it("waits for the server's Retry-After before asking for credentials again", async () => {
    vi.useFakeTimers();
    let limited = true;
    const c = creds();
    const t = setup((path) => {
      if (path === "/realtime/credentials" && limited) {
        limited = false;
        throw new ApiError(429, "rate_limited", "too many credential requests", [], 30_000);
      }
      return issued(c)(path);
    });
    running = t.hub;
    const ready = t.hub.start();
    const asked = () => t.calls.filter((x) => x.path === "/realtime/credentials").length;
    await vi.advanceTimersByTimeAsync(29_999); // the backoff alone (2-4 ms) would have retried
    expect(asked()).toBe(1);
    await vi.advanceTimersByTimeAsync(7_501); // at most a quarter later: the jitter
    await ready;
    expect(asked()).toBe(2);
    expect(t.clients[0]!.options.clientId).toBe(c.clientId);
  });

  it("waits for the server's Retry-After before replaying again", async () => {
    vi.useFakeTimers();
    let limited = true;
    const t = setup((path) => {
      if (path.startsWith("/events") && limited) {
        limited = false;
        throw new ApiError(429, "rate_limited", "too many replay requests", [], 20_000);
      }
      if (path.startsWith("/events")) return page([ev(11)].filter((e) => e.seq > after(path)), 11);
      return issued(creds({ latestSeq: 10 }))(path);
    });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept(true);
    t.clients[0]!.deliver("tenants/acme/meta/seq", { seq: 11 }, true);
    const replays = () => t.calls.filter((x) => x.path.startsWith("/events")).length;
    await vi.advanceTimersByTimeAsync(19_999);
    expect(replays()).toBe(1);
    expect(t.seen).toEqual([]);
    await vi.advanceTimersByTimeAsync(5_001);
    expect(replays()).toBe(2);
    expect(t.seen.map((e) => e.seq)).toEqual([11]);
  });

  it("a stop() during a credentials retry does not leave a later start() waiting forever", async () => {
    vi.useFakeTimers();
    let apiUp = false;
    const c = creds();
    const t = setup((path) => {
      if (path === "/realtime/credentials" && !apiUp) throw new ApiError(503, "unavailable", "try later");
      return issued(c)(path);
    }, { backoff: { baseMs: 60_000, maxMs: 60_000 } });
    running = t.hub;
    void t.hub.start();
    await vi.advanceTimersByTimeAsync(10); // the first attempt failed; it sleeps before the next
    t.hub.stop();
    apiUp = true;
    const ready = t.hub.start();
    await vi.advanceTimersByTimeAsync(10); // well before the old backoff would have ended
    await ready;
    expect(t.clients).toHaveLength(1);
    expect(t.clients[0]!.options.clientId).toBe(c.clientId);
  });

  it("shows reconnecting when the connection closes during a renewal that fails", async () => {
    vi.useFakeTimers();
    const first = creds({ expiresAt: new Date(Date.now() + 100_000).toISOString() });
    let fail: (err: unknown) => void = () => undefined;
    const t = setup((path, body) => {
      if (path === "/realtime/credentials" && body) return new Promise((_, reject) => (fail = reject));
      return issued(first)(path);
    });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept(true);
    await vi.advanceTimersByTimeAsync(81_000); // the renewal is under way
    t.clients[0]!.drop();
    expect(t.hub.status).toBe("live"); // a renewal's own disconnect is no outage...
    fail(new ApiError(503, "unavailable", "try later"));
    await vi.advanceTimersByTimeAsync(0);
    expect(t.hub.status).toBe("reconnecting"); // ...but a failed one is
    await vi.advanceTimersByTimeAsync(10);
    expect(t.clients.length).toBeGreaterThanOrEqual(2);
  });

  it("stops renewing after stop(), even when a renewal was under way", async () => {
    vi.useFakeTimers();
    const first = creds({ expiresAt: new Date(Date.now() + 100_000).toISOString() });
    let answer: (c: unknown) => void = () => undefined;
    const t = setup((path, body) => {
      if (path === "/realtime/credentials" && body) return new Promise((resolve) => (answer = resolve));
      return issued(first)(path);
    });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept(true);
    await vi.advanceTimersByTimeAsync(81_000);
    const renewals = () => t.calls.filter((c) => c.path === "/realtime/credentials" && c.body).length;
    expect(renewals()).toBe(1);
    t.hub.stop();
    answer({ ...first, password: "pw-late", expiresAt: new Date(Date.now() + 100_000).toISOString() });
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(renewals()).toBe(1);
  });

  it("treats a later drop as an outage after a renewal that ended in an auth refusal", async () => {
    vi.useFakeTimers();
    const first = creds({ expiresAt: new Date(Date.now() + 100_000).toISOString() });
    let answer: (c: unknown) => void = () => undefined;
    const t = setup((path, body) => {
      if (path === "/realtime/credentials" && body) return new Promise((resolve) => (answer = resolve));
      return issued(first)(path);
    });
    running = t.hub;
    await t.hub.start();
    t.clients[0]!.accept(true);
    await vi.advanceTimersByTimeAsync(81_000); // the renewal is under way...
    t.clients[0]!.refuse(0x86); // ...and the broker refuses the old password first
    answer({ ...first, password: "pw-new", expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
    await vi.advanceTimersByTimeAsync(0);
    expect(t.clients[1]!.options).toMatchObject({ password: "pw-new" });
    t.clients[1]!.accept(true);
    t.clients[1]!.drop(); // a real outage, not the renewal's
    expect(t.hub.status).toBe("reconnecting");
  });
});
