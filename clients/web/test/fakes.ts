// Test doubles for the two things the core talks to: MQTT.js and the hub's api.
import { EventEmitter } from "node:events";

import type { IClientOptions, MqttClient } from "mqtt";

import { ApiError, HubApi, type Credentials, type EventPage } from "../src/core/api";
import type { ConnectFn } from "../src/core/client";
import type { HubEvent } from "../src/core/catalog";

export class FakeMqtt extends EventEmitter {
  connected = false;
  ended = false;
  subscribed: string[] = [];
  unsubscribed: string[] = [];
  constructor(readonly url: string, readonly options: IClientOptions) {
    super();
  }
  subscribe(topics: string | string[], _opts: unknown, cb?: (err: Error | null, granted: unknown[]) => void) {
    const list = Array.isArray(topics) ? topics : [topics];
    this.subscribed.push(...list);
    cb?.(null, list.map((topic) => ({ topic, qos: 1 })));
    return this;
  }
  unsubscribe(topics: string | string[]) {
    this.unsubscribed.push(...(Array.isArray(topics) ? topics : [topics]));
    return this;
  }
  end() {
    this.ended = true;
    this.connected = false;
    return this;
  }
  // What the broker does:
  accept(sessionPresent = false) {
    this.connected = true;
    this.emit("connect", { cmd: "connack", sessionPresent, reasonCode: 0 });
  }
  refuse(code: number) {
    this.emit("error", Object.assign(new Error("Connection refused"), { code }));
    this.drop();
  }
  drop() {
    this.connected = false;
    this.emit("close");
  }
  deliver(topic: string, body: unknown, retain = false) {
    const payload = new TextEncoder().encode(JSON.stringify(body));
    this.emit("message", topic, payload, { cmd: "publish", topic, payload, retain, qos: 1, dup: false });
  }
}

export function fakeConnect(): { connect: ConnectFn; clients: FakeMqtt[] } {
  const clients: FakeMqtt[] = [];
  const connect: ConnectFn = (url, options) => {
    const c = new FakeMqtt(url, options);
    clients.push(c);
    return c as unknown as MqttClient;
  };
  return { connect, clients };
}

let serial = 0;
export function creds(overrides: Partial<Credentials> = {}): Credentials {
  serial++;
  return {
    clientId: `acme.fd-1.${String(serial).padStart(8, "0")}`,
    username: `s.acme.fd-1.${serial}`,
    password: `pw-${serial}`,
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    websocketUrl: "ws://localhost:9001/mqtt",
    mqttUrl: "mqtt://localhost:1883",
    topicPrefix: "tenants/acme/",
    latestSeq: 10,
    ...overrides,
  };
}

export function appointmentEvent(seq: number, overrides: Partial<HubEvent> = {}): HubEvent {
  return {
    id: `ev-${seq}`,
    type: "appointment:created",
    tenant: "acme",
    seq,
    occurredAt: "2026-11-26T09:00:00.000Z",
    actor: "fd-1",
    patientId: "p-1",
    entityId: `a-${seq}`,
    data: {
      id: `a-${seq}`, patientId: "p-1", patientName: "Ada Lovelace", providerId: "dr-1",
      providerName: "Dr. One", locationId: "loc-1", locationName: null,
      scheduledStart: "2026-11-26T10:00:00Z", scheduledEnd: "2026-11-26T10:30:00Z",
      status: "scheduled", reason: null, previousStatus: null, previousScheduledStart: null,
      previousScheduledEnd: null, cancelReason: null,
    },
    ...overrides,
  } as HubEvent;
}

type Route = (path: string, body: unknown) => unknown;

/** A HubApi whose answers come from `route`; throwing an ApiError answers that error. */
export function fakeApi(route: Route): { api: HubApi; calls: { method: string; path: string; body: unknown }[] } {
  const calls: { method: string; path: string; body: unknown }[] = [];
  const fetchImpl = (async (input: string, init: RequestInit) => {
    const path = input;
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method: init.method ?? "GET", path, body });
    try {
      return new Response(JSON.stringify(await route(path, body)), { status: 200 });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      // An error that carries a Retry-After is answered with the header, as the hub does.
      const headers: Record<string, string> =
        err.retryAfterMs === null ? {} : { "retry-after": String(Math.ceil(err.retryAfterMs / 1000)) };
      return new Response(JSON.stringify({ error: err.code, message: err.message, details: err.details }), {
        status: err.status,
        headers,
      });
    }
  }) as unknown as typeof fetch;
  return { api: new HubApi({ token: () => "jwt", fetch: fetchImpl }), calls };
}

export function page(events: HubEvent[], latestSeq: number): EventPage {
  return { events, latestSeq };
}
