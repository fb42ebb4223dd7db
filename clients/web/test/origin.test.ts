import { afterEach, describe, expect, it, vi } from "vitest";

import { ApiError, HubApi } from "../src/core/api";
import { HubClient } from "../src/core/client";
import { appointmentEvent, creds, fakeApi, fakeConnect, page } from "./fakes";

const quiet = { warn: () => undefined, error: () => undefined };

function recordingApi() {
  const seen: { method: string; path: string; connection: string | null }[] = [];
  const fetchImpl = (async (path: string, init: RequestInit) => {
    seen.push({ method: init.method ?? "GET", path, connection: new Headers(init.headers).get("x-hub-connection") });
    return new Response("{}", { status: 200 });
  }) as unknown as typeof fetch;
  return { api: new HubApi({ token: () => "jwt", fetch: fetchImpl }), seen };
}

let running: HubClient | undefined;
afterEach(() => {
  running?.stop();
  running = undefined;
});

describe("the connection a write names", () => {
  it("is sent on writes only, once set", async () => {
    const { api, seen } = recordingApi();
    await api.post("/appointments", {});
    api.connectionId = "acme.fd-1.3f9a";
    await api.get("/appointments");
    await api.post("/appointments/a-1/status", { status: "checked_in" });
    await api.request("PUT", "/patients/p-1", {});
    expect(seen.map((s) => s.connection)).toEqual([null, null, "acme.fd-1.3f9a", "acme.fd-1.3f9a"]);
  });

  it("is the client's broker client id, and the client knows its own events by it", async () => {
    const first = creds();
    const second = creds();
    const { api } = fakeApi((path, body) => {
      if (path === "/realtime/credentials") {
        // A renewal of the first session finds it gone: the client takes new credentials.
        if ((body as { clientId?: string } | undefined)?.clientId) throw new ApiError(404, "not_found", "no session");
        return api.connectionId === null ? first : second;
      }
      if (path === "/notifications") return { notifications: [] };
      return page([], 10);
    });
    const mqtt = fakeConnect();
    const hub = new HubClient({ api, userId: "fd-1", connect: mqtt.connect, logger: quiet, backoff: { baseMs: 1, maxMs: 2 } });
    running = hub;
    expect(hub.isOwn(appointmentEvent(11, { origin: first.clientId }))).toBe(false); // no credentials yet
    await hub.start();
    expect(hub.connectionId).toBe(first.clientId);
    expect(api.connectionId).toBe(first.clientId);
    expect(hub.isOwn(appointmentEvent(11, { origin: first.clientId }))).toBe(true);
    // Same user, another window (another connection): not its own.
    expect(hub.isOwn(appointmentEvent(12, { actor: "fd-1", origin: second.clientId }))).toBe(false);
    expect(hub.isOwn(appointmentEvent(13, { actor: "fd-1" }))).toBe(false);

    // The broker refuses the login and the api no longer knows the session: new
    // credentials. Writes name the new id; an event of a write made under the old one is
    // still this window's.
    mqtt.clients[0]!.refuse(0x86);
    await vi.waitFor(() => expect(api.connectionId).toBe(second.clientId));
    expect(hub.isOwn(appointmentEvent(14, { origin: second.clientId }))).toBe(true);
    expect(hub.isOwn(appointmentEvent(15, { origin: first.clientId }))).toBe(true);
  });
});
